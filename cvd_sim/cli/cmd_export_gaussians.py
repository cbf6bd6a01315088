"""`cvd-sim export-gaussians`: the 4D Gaussians of a world-model rollout as one standard 3DGS `.ply` per frame.

A planner drives a scenario with the world-model backend; after every step the Gaussian decoder turns the newest
latent frame into one Gaussian per pixel of the six views, which are moved to a common frame (the first ego
pose, metres) and written with `cvd_sim.splat.save_gaussians_ply`. View them with `examples/view_gaussians.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size
from cvd_sim.cli.env_args import planner_from_arg, scenario_from_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-gaussians", help="4D Gaussians of a world-model rollout as 3DGS .ply files, one per frame"
    )
    parser.add_argument("--model", default=None, help="WorldModel folder (default: the shipped checkpoint)")
    parser.add_argument("--scenario", default="stalled_vehicle", help="library name, file or builder:NAME")
    parser.add_argument("--planner", default="idm", help="planner driving the rollout")
    parser.add_argument("--steps", type=int, default=10, help="rollout steps (frames written = steps + 1)")
    parser.add_argument("--size", default="64x112", help="camera image size HxW")
    parser.add_argument("--min-opacity", type=float, default=0.0, help="drop Gaussians below this opacity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/gaussians"), help="output folder")
    parser.add_argument("--json", type=Path, default=None, help="write the list of frames and counts here")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    import numpy as np
    import torch

    from cvd_sim.envs.config import EnvConfigError, make_env_config
    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.worldmodel_backend import rotate_quaternions
    from cvd_sim.splat.ply import save_gaussians_ply

    if args.steps < 0:
        raise UserError(f"--steps: must be >= 0, got {args.steps}")
    if not 0.0 <= args.min_opacity < 1.0:
        raise UserError(f"--min-opacity: must be in [0, 1), got {args.min_opacity}")
    planner = planner_from_arg(args.planner)
    scenario = scenario_from_arg(args.scenario)
    height, width = parse_size(args.size)
    try:
        config = make_env_config(
            "cvd-sim export-gaussians",
            scenario=scenario,
            backend="worldmodel",
            backend_options={"model": args.model},
            control=planner.control,
            image_height=height,
            image_width=width,
            seed=args.seed,
        )
        env = DrivingEnv(config)
    except EnvConfigError as err:
        raise UserError(str(err)) from None
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"--model/--size: {err}") from None

    obs, info = env.reset()
    planner.reset(env.scenario_info())
    world_to_first = torch.from_numpy(np.linalg.inv(env.world.snapshot().ego_to_world))
    args.out.mkdir(parents=True, exist_ok=True)
    written = []

    def export(index: int) -> None:
        g = env.backend.latest_gaussians(env.slot)
        keep = g["opacities"] >= args.min_opacity
        means = g["means"][keep] @ world_to_first[:3, :3].T + world_to_first[:3, 3]
        quats = rotate_quaternions(world_to_first[:3, :3], g["quats"][keep])
        path = args.out / f"frame_{index:04d}.ply"
        save_gaussians_ply(
            path, means.float(), quats, g["scales"][keep], g["opacities"][keep], g["colors"][keep]
        )
        snap = env.world.snapshot()
        ego_to_first = world_to_first.numpy() @ snap.ego_to_world
        written.append(
            {"frame": index, "time": float(snap.time), "path": str(path), "count": int(keep.sum())}
            | {"ego_to_first": ego_to_first.tolist()}
        )

    export(0)
    for index in tqdm(range(1, args.steps + 1), desc="export-gaussians", unit="frame"):
        obs, _, terminated, truncated, info = env.step(planner.act(obs, info))
        export(index)
        if terminated or truncated:
            break
    env.close()
    print(f"wrote {len(written)} frames ({written[0]['count']} Gaussians in the first) to {args.out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"frame": "first ego pose", "frames": written}, indent=1), encoding="utf-8"
        )
    return 0
