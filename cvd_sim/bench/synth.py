"""`cvd-sim bench synth`: ray-cast sensor speed (frames/s, rays/s) against the raw open3d `cast_rays` ceiling.

One random SynthDrive scene rolled out in the World. Per frame, "ours" = replace the agents, render 6 cameras
(RGB, depth, semantic, instance, sky) and one LiDAR sweep; "casts only" = the same agent update, culls and
two-level casts without shading (the agent scene is cast only on the rays the culls keep). The ceiling = one
`cast_rays` call on exactly the same rays against one prebuilt scene holding the same static + agent triangles
(nothing else timed). The three are timed in alternation, so machine load hits them alike.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import open3d as o3d

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size
from cvd_sim.data.random_traffic import random_scenario
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.sensors.agent_meshes import agent_meshes
from cvd_sim.sensors.culling import camera_agent_mask, lidar_agent_mask
from cvd_sim.sensors.lidar import LidarSpec, lidar_rays, lidar_to_ego
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.renderer import RaycastRenderer, camera_rays_np
from cvd_sim.sensors.scenario_map import map_geometry
from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.world import World


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="ray-cast sensors: frames/s, rays/s, ratio to open3d cast_rays"
    )
    parser.add_argument("--size", default="64x112", help="camera image size HxW")
    parser.add_argument("--frames", type=int, default=10, help="frames rendered per measurement")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs (medians reported, and the ratio of the best runs)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for open3d casts and shading (0 = all cores)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.set_defaults(func=handler)


def random_rollout(seed: int, frames: int):
    """A random SynthDrive scenario driven by the autopilot -> (scenario, `frames` world snapshots)."""
    scenario = random_scenario(seed, frames * 0.1 + 1.0)
    world = World.from_scenario(scenario, with_expert=False)
    pilot = Autopilot(world)
    snaps = [world.snapshot()]
    while len(snaps) < frames:
        snaps.append(world.step(pilot(world)))
    return scenario, snaps


def _interleaved_times(fns, repeats: int) -> list[list[float]]:
    """Seconds of each function per repeat, timed in alternation so machine load hits all alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return times


def measure(height: int, width: int, frames: int, repeats: int, threads: int, seed: int) -> dict:
    scenario, snaps = random_rollout(seed, frames)
    rig = CameraRig.nuscenes(height, width)
    spec = LidarSpec()
    start = time.perf_counter()
    renderer = RaycastRenderer(
        map_geometry(scenario.map), text=scenario.scene.text, seed=seed, nthreads=threads
    )
    build_s = time.perf_counter() - start
    poses = [(s.ego_to_world @ rig.cam_to_ego, s.ego_to_world @ lidar_to_ego()) for s in snaps]

    def ours() -> None:
        for snap, (cams, lidar) in zip(snaps, poses):
            renderer.set_agents(snap.boxes, snap.categories, snap.instance_ids)
            renderer.render_cameras(rig.intrinsics, cams, height, width)
            renderer.render_lidar(lidar, spec)

    def geometry_only() -> None:  # the same casts and culls, without RGB shading or LiDAR point assembly
        for snap, (cams, lidar) in zip(snaps, poses):
            renderer.set_agents(snap.boxes, snap.categories, snap.instance_ids)
            cam_rays = camera_rays_np(rig.intrinsics, cams, height, width)
            renderer.caster.cast(
                cam_rays, camera_agent_mask(renderer.boxes, rig.intrinsics, cams, height, width)
            )
            renderer.caster.cast(lidar_rays(spec, lidar), lidar_agent_mask(renderer.boxes, spec, lidar))

    rays, scenes, agent_rays = [], [], 0
    for snap, (cams, lidar) in zip(snaps, poses):
        boxes = np.asarray(snap.boxes, np.float64).reshape(-1, 7)
        agent_rays += int(camera_agent_mask(boxes, rig.intrinsics, cams, height, width).sum())
        agent_rays += int(lidar_agent_mask(boxes, spec, lidar).sum())
        cam = camera_rays_np(rig.intrinsics, cams, height, width).reshape(-1, 6)
        rays.append(o3d.core.Tensor(np.concatenate([cam, lidar_rays(spec, lidar).reshape(-1, 6)])))
        mesh = MeshSet.concatenate(
            [renderer.caster.static, agent_meshes(snap.boxes, snap.categories, snap.instance_ids)]
        )
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
        scenes.append(scene)

    def ceiling() -> None:
        for scene, r in zip(scenes, rays):
            scene.cast_rays(r, nthreads=threads)

    ceiling()  # warm-up: builds the BVHs outside the timing
    ours()
    times = _interleaved_times([ours, geometry_only, ceiling], repeats)
    t_ours, t_geometry, t_ceiling = (statistics.median(t) for t in times)
    n_rays = sum(int(r.shape[0]) for r in rays)
    return {
        "image_size": [height, width],
        "frames": frames,
        "rays_per_frame": n_rays // frames,
        "agent_cast_rays_per_frame": agent_rays // frames,  # rays the culls leave for the agent scene
        "static_triangles": renderer.caster.static.num_faces,
        "static_build_s": round(build_s, 3),
        "ours_frames_per_s": round(frames / t_ours, 2),
        "ours_rays_per_s": round(n_rays / t_ours),
        "ceiling_rays_per_s": round(n_rays / t_ceiling),
        "ratio_to_ceiling": round(t_ceiling / t_ours, 3),
        "ratio_to_ceiling_best_runs": round(min(times[2]) / min(times[0]), 3),  # least disturbed under load
        "geometry_only_rays_per_s": round(n_rays / t_geometry),
        "geometry_only_ratio_to_ceiling": round(t_ceiling / t_geometry, 3),
        "target_ratio": 0.5,
    }


def handler(args) -> int:
    height, width = parse_size(args.size)
    if args.frames <= 0 or args.repeats <= 0:
        raise UserError("--frames and --repeats must be positive")
    figures = measure(height, width, args.frames, args.repeats, args.threads, args.seed)
    print(f"bench synth: {figures['frames']} frames, 6 cameras {height}x{width} + 32-beam LiDAR")
    print(f"{'':<28}{'rays/s':>14}{'frames/s':>10}")
    print(f"{'ours (render + shade)':<28}{figures['ours_rays_per_s']:>14,}{figures['ours_frames_per_s']:>10}")
    geometry_fps = figures["geometry_only_rays_per_s"] / figures["rays_per_frame"]
    print(f"{'ours, casts only (no RGB)':<28}{figures['geometry_only_rays_per_s']:>14,}{geometry_fps:>10.2f}")
    ceiling_fps = figures["ceiling_rays_per_s"] / figures["rays_per_frame"]
    print(f"{'open3d cast_rays ceiling':<28}{figures['ceiling_rays_per_s']:>14,}{ceiling_fps:>10.2f}")
    print(
        f"agent scene cast on {figures['agent_cast_rays_per_frame']:,} of {figures['rays_per_frame']:,} rays"
    )
    print(
        f"ratio to ceiling: {figures['ratio_to_ceiling']:.2f} full render, "
        f"{figures['geometry_only_ratio_to_ceiling']:.2f} casts only (target >= 0.5); "
        f"best runs {figures['ratio_to_ceiling_best_runs']:.2f} full render"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0
