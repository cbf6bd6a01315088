"""`RaycastBackend`: ground-truth sensors from C's `RaycastRenderer` (open3d ray casting of the scenario)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from cvd_sim.envs.backend import SensorFrame
from cvd_sim.scenarios.schema import Scenario

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.sensors.renderer import RaycastRenderer
from cvd_sim.sensors.scenario_map import map_geometry
from cvd_sim.world.world import WorldSnapshot

RENDERER_CACHE_SIZE = 4


class RaycastBackend:
    """One static mesh world per (map, scene text, scenario seed), shared by the slots that drive the same map.

    The roadside scenery is drawn from the scenario's own seed, so it belongs to the scenario and does not change
    with the episode seed. The raycaster is stateless over time: a slot's only history is its renderer.
    """

    name = "raycast"

    def __init__(self, rig: CameraRig, num_slots: int = 1, threads: int = 0):
        self.rig = rig
        self.num_slots = int(num_slots)
        self.threads = int(threads)
        self._renderers: OrderedDict[tuple[str, str, int], RaycastRenderer] = OrderedDict()
        self._slot_renderer: list[RaycastRenderer | None] = [None] * self.num_slots

    def _renderer(self, scenario: Scenario, seed: int) -> RaycastRenderer:
        key = (scenario.map.model_dump_json(), scenario.scene.text, int(seed))
        hit = self._renderers.get(key)
        if hit is not None:
            self._renderers.move_to_end(key)
            return hit
        renderer = RaycastRenderer(
            map_geometry(scenario.map), text=scenario.scene.text, seed=int(seed), nthreads=self.threads
        )
        self._renderers[key] = renderer
        if len(self._renderers) > RENDERER_CACHE_SIZE:
            self._renderers.popitem(last=False)
        return renderer

    def reset(self, slot: int, scenario: Scenario, snapshot: WorldSnapshot, seed: int) -> SensorFrame:
        self._slot_renderer[slot] = self._renderer(scenario, scenario.seed)
        return self.render([(slot, snapshot)])[0]

    def render(self, requests: Sequence[tuple[int, WorldSnapshot]]) -> list[SensorFrame]:
        frames = []
        rig = self.rig
        for slot, snap in requests:
            renderer = self._slot_renderer[slot]
            if renderer is None:
                raise RuntimeError(f"RaycastBackend: slot {slot} rendered before reset")
            renderer.set_agents(snap.boxes, snap.categories, snap.instance_ids)
            cam = renderer.render_cameras(
                rig.intrinsics, snap.ego_to_world @ rig.cam_to_ego, rig.height, rig.width
            )
            frames.append(SensorFrame(images=cam.rgb, depth=cam.depth.astype(np.float32, copy=False)))
        return frames

    def close(self) -> None:
        self._renderers.clear()
        self._slot_renderer = [None] * self.num_slots
