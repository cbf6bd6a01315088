"""`cvd-sim scenario play FILE -o out.gif|mp4`: roll a scenario out with the autopilot and animate it
(the arguments are in `scenario_play_args.py`, which imports this module only when the command runs).

Left panel: the bird's-eye view around the ego (agents in category colours, the ego green, its trail and route)
with the running scores; right panel: the six layout images the world model would be conditioned on.
"""

from __future__ import annotations

import json

import numpy as np
from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.scenario_play_args import VIDEO_SUFFIXES
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import invert_pose
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.sensors.layout import LayoutPainter, layout_to_rgb
from cvd_sim.viz.mosaic import ring_mosaic, stack_panels
from cvd_sim.viz.video import write_video
from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.bev import BevRenderer
from cvd_sim.world.world import World


def _check_args(args) -> None:
    if args.out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{args.out}: -o: the output must end in .gif or .mp4")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"{args.file}: --steps: must be at least 1")
    if args.every < 1:
        raise UserError(f"{args.file}: --every: must be at least 1")
    if min(args.layout_size) < 8 or args.bev_size < 64:
        raise UserError(f"{args.file}: --layout-size/--bev-size: too small")


def _caption(world: World) -> str:
    snap_time = world.time
    text = f"{world.scenario.name}  t={snap_time:5.1f}s  v={world.ego.speed:4.1f} m/s"
    if world.records:
        s = world.scores()
        text += (
            f"\ncollisions {s.num_collisions} (at fault {s.num_at_fault_collisions})  DAC {s.drivable_area_compliance:.0f}"
            f"\nRC {s.route_completion:.2f}  PDMS {s.pdms:.2f}  nuPlan {s.nuplan_score:.2f}"
        )
    return text


def cmd_play(args) -> int:
    _check_args(args)
    try:
        scenario = load_scenario(args.file)
    except ScenarioError as err:
        raise UserError(str(err).splitlines()[0]) from None
    world = World.from_scenario(scenario, seed=args.seed)
    pilot = Autopilot(world)
    height, width = args.layout_size
    rig = CameraRig.nuscenes(height, width)
    painter = LayoutPainter(scenario.map, rig.intrinsics, rig.cam_to_ego, height, width)
    bev = BevRenderer(
        scenario.map, world.road_map.drivable_area, world.route.path.points, size_px=args.bev_size
    )
    steps = world.num_steps if args.steps is None else min(args.steps, world.num_steps)

    def frame() -> np.ndarray:
        snap = world.snapshot()
        layout = painter(snap.boxes_in_ego(), snap.categories, invert_pose(snap.ego_to_world))
        return stack_panels([bev(snap, _caption(world)), ring_mosaic(layout_to_rgb(layout))], axis=1)

    frames = [frame()]
    for _ in tqdm(range(steps), desc=f"play {scenario.name}", unit="step"):
        world.step(pilot(world))
        if world.step_index % args.every == 0 or world.step_index == steps:
            frames.append(frame())
    write_video(args.out, frames, fps=1.0 / (scenario.dt * args.every))
    scores = world.scores().as_dict()
    print(f"{scenario.name}: {steps} steps, " + ", ".join(f"{k} {v:.3g}" for k, v in scores.items()))
    print(f"wrote {args.out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"scenario": scenario.name, "steps": steps, "scores": scores}, indent=2)
        )
    return 0
