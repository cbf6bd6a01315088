"""SynthDrive: roll scenarios out in the World, render every frame with the ray caster, write nuScenes layout.

Scene k of a dataset with seed S is drawn from seed hash(S, k): mostly procedural maps with random traffic,
and every `LIBRARY_EVERY`-th scene a library scenario (when the library has any). The ego is driven by the
autopilot. The dataset frame is the scenario frame shifted so that map coordinates are positive (nuScenes).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cvd_sim.data.frame_record import FrameRecord
from cvd_sim.data.nuscenes_writer import PARTS_DIR, SceneWriter, merge_tables, scene_done
from cvd_sim.data.random_traffic import random_scenario
from cvd_sim.data.tokens import token
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.scenarios.schema import Scenario
from cvd_sim.sensors.lidar import LidarSpec, lidar_to_ego
from cvd_sim.sensors.renderer import RaycastRenderer
from cvd_sim.sensors.scenario_map import map_geometry
from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.world import World

LIBRARY_EVERY = 5
MAP_ORIGIN_MARGIN = 200.0  # metres between the dataset origin and the map's lower-left corner
START_US = 1_700_000_000_000_000  # first timestamp of scene 0 (microseconds)


@dataclass(frozen=True)
class SynthConfig:
    scenes: int = 40
    frames: int = 24
    height: int = 64
    width: int = 112
    fps: float = 10.0
    seed: int = 0
    version: str = "v1.0-trainval"
    lidar_azimuth_steps: int = 1084
    keyframe_every: int = (
        1  # 1 = every frame annotated; 6 at fps 12 = nuScenes (2 Hz keyframes + 12 Hz sweeps)
    )


def scene_name(index: int) -> str:
    return f"scene-{index:04d}"


def scene_seed(seed: int, index: int) -> int:
    return int(token("scene-seed", seed, index)[:8], 16)


def library_scenarios() -> list[Path]:
    folder = Path(__file__).resolve().parents[2] / "scenarios" / "library"
    return sorted(folder.glob("*.yaml"))


def steps_per_frame(fps: float, dt: float) -> int:
    """Simulation steps between two frames: the fewest that make the step no longer than `dt`."""
    ratio = 1.0 / (fps * dt)
    return max(1, round(ratio) if abs(ratio - round(ratio)) < 1e-6 else math.ceil(ratio))


def scene_scenario(config: SynthConfig, index: int) -> Scenario:
    """The scenario of scene `index`, long enough for the configured frames, its dt shortened when needed so
    that frames fall on simulation steps (1 / fps = whole steps)."""
    duration = config.frames / config.fps + 1.0
    library = library_scenarios()
    if library and index % LIBRARY_EVERY == LIBRARY_EVERY - 1:
        from cvd_sim.scenarios.io import load_scenario

        scenario = load_scenario(library[(index // LIBRARY_EVERY) % len(library)])
    else:
        scenario = random_scenario(scene_seed(config.seed, index), duration)
    dt = 1.0 / (config.fps * steps_per_frame(config.fps, scenario.dt))
    return scenario.model_copy(update={"duration": max(duration, scenario.duration), "dt": dt})


def render_scene(config: SynthConfig, index: int, dataroot: str | Path, nthreads: int = 0) -> str:
    """Roll out, render and write scene `index`; returns its name."""
    name = scene_name(index)
    scenario = scene_scenario(config, index)
    rig = CameraRig.nuscenes(config.height, config.width)
    step = steps_per_frame(config.fps, scenario.dt)
    world = World.from_scenario(scenario, seed=scene_seed(config.seed, index) % 2**31, with_expert=False)
    pilot = Autopilot(world)
    minx, miny, _, _ = world.road_map.drivable_area.bounds
    offset = np.array([MAP_ORIGIN_MARGIN - minx, MAP_ORIGIN_MARGIN - miny])
    shift = np.eye(4)
    shift[:2, 3] = offset
    geom = map_geometry(scenario.map, tuple(offset))
    renderer = RaycastRenderer(
        geom, text=scenario.scene.text, seed=scene_seed(config.seed, index), nthreads=nthreads
    )
    writer = SceneWriter(
        dataroot,
        name,
        rig,
        scenario.scene.text,
        START_US + index * 10**9,
        keyframe_every=config.keyframe_every,
    )
    lidar = LidarSpec(azimuth_steps=config.lidar_azimuth_steps)
    snap = world.snapshot()
    for frame in range(config.frames):
        if frame:
            for _ in range(step):
                snap = world.step(pilot(world)) if not world.done else snap
        boxes = snap.boxes.copy()
        boxes[:, :2] += offset
        ego_to_world = shift @ snap.ego_to_world
        renderer.set_agents(boxes, snap.categories, snap.instance_ids)
        cameras = renderer.render_cameras(
            rig.intrinsics, ego_to_world @ rig.cam_to_ego, rig.height, rig.width
        )
        points, point_ids = renderer.render_lidar(ego_to_world @ lidar_to_ego(), lidar)
        record = FrameRecord(
            time=frame / config.fps,
            ego_to_world=ego_to_world,
            boxes=boxes,
            categories=snap.categories,
            instance_ids=snap.instance_ids,
            speeds=np.linalg.norm(snap.velocities, axis=1),
            cameras=cameras,
            lidar=points,
            lidar_instance=point_ids,
        )
        writer.add_frame(frame, record)
    writer.finish(geom)
    return name


def _worker(args) -> str:
    config, index, dataroot, nthreads = args
    return render_scene(config, index, dataroot, nthreads)


def _check_config(dataroot: Path, config: SynthConfig) -> None:
    path = dataroot / PARTS_DIR.parent / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != asdict(config):
            diff = sorted(k for k in old if old.get(k) != asdict(config).get(k))
            raise ValueError(
                f"{dataroot}: was generated with different settings ({', '.join(diff)}); use a new --out"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(config), indent=1))


def synthesize(config: SynthConfig, dataroot: str | Path, workers: int = 1, progress: bool = True) -> dict:
    """Generate (or resume) a SynthDrive dataset; returns {"scenes", "rendered", "skipped"}."""
    root = Path(dataroot)
    _check_config(root, config)
    todo = [i for i in range(config.scenes) if not scene_done(root, scene_name(i))]
    threads = max(1, (mp.cpu_count() or 1) // max(workers, 1))
    jobs = [(config, i, str(root), threads) for i in todo]
    bar = tqdm(
        total=config.scenes, initial=config.scenes - len(todo), desc="synth scenes", disable=not progress
    )
    if workers <= 1:
        for job in jobs:
            _worker(job)
            bar.update()
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_worker, jobs):
                bar.update()
    bar.close()
    merge_tables(root, config.version)
    return {"scenes": config.scenes, "rendered": len(todo), "skipped": config.scenes - len(todo)}
