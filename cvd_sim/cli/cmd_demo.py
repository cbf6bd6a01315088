"""`cvd-sim demo`: a closed-loop rollout of a planner in a library edge-case scenario; writes a video of the six
views + depth + BEV panel and a metrics JSON. The env/agent packages are imported when the command runs.

With `--backend worldmodel` the raycast ground truth renders the same snapshots alongside: the video shows
generated six views | ground-truth six views | generated depth | BEV, and the JSON adds PSNR/SSIM/AbsRel/delta1
per step."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size
from cvd_sim.cli.env_args import planner_from_arg, scenario_from_arg

DEFAULT_SCENARIO = "stalled_vehicle"  # library edge case: the IDM planner changes lanes around a stalled car
WORLDMODEL_SIZE = "64x112"  # the shipped tiny world model's training resolution
RAYCAST_SIZE = "128x224"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="closed-loop rollout in a library scenario: video + metrics JSON"
    )
    parser.add_argument(
        "--backend", default="worldmodel", help="sensor backend: worldmodel, raycast (or module:Class)"
    )
    parser.add_argument(
        "--model", default=None, help="worldmodel: WorldModel folder (default: the shipped checkpoint)"
    )
    parser.add_argument(
        "--num-steps", type=int, default=None, help="worldmodel: sampling steps (default: the fast setting)"
    )
    parser.add_argument(
        "--scenario", default=DEFAULT_SCENARIO, help="library name, scenario file or builder:NAME"
    )
    parser.add_argument(
        "--planner",
        default="idm",
        help="idm | pure_pursuit | constant_velocity | nuplan_simple | module:Class",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps to run (default: the scenario's duration)"
    )
    parser.add_argument(
        "--size",
        default=None,
        help=f"camera image size HxW (default: {WORLDMODEL_SIZE} for the world model, as trained; else {RAYCAST_SIZE})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics JSON here")
    parser.set_defaults(func=handler)


def side_by_side(env, truth):
    """uint8 frame: generated six views | ground-truth six views | generated depth | BEV, one row."""
    from cvd_sim.viz.colormap import colorize_depth
    from cvd_sim.viz.mosaic import ring_mosaic, stack_panels

    generated = env._frame
    panels = [
        ring_mosaic(generated.images),
        ring_mosaic(truth.images),
        ring_mosaic(colorize_depth(generated.depth)),
    ]
    return stack_panels([*panels, env.bev(max(panels[0].shape[0], 128))], axis=1)


def fidelity(frame, truth) -> dict[str, float]:
    """PSNR/SSIM of the generated views and AbsRel/delta1 of their depth against the ground truth."""
    from cvd_sim.agents.fidelity import depth_scores, image_scores

    psnr, ssim = image_scores(frame.images, truth.images)
    abs_rel, delta1 = depth_scores(frame.depth, truth.depth)
    return {"psnr": psnr, "ssim": ssim, "abs_rel": abs_rel, "delta1": delta1}


def mean_fidelity(steps: list[dict]) -> dict[str, float]:
    import numpy as np

    return {k: float(np.nanmean([s[k] for s in steps])) for k in ("psnr", "ssim", "abs_rel", "delta1")}


def handler(args) -> int:
    from cvd_sim.envs.config import EnvConfigError, make_env_config
    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.raycast_backend import RaycastBackend
    from cvd_sim.envs.reward import episode_end
    from cvd_sim.viz.video import write_video

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps: must be >= 1, got {args.steps}")
    if args.num_steps is not None and args.num_steps < 1:
        raise UserError(f"--num-steps: must be >= 1, got {args.num_steps}")
    planner = planner_from_arg(args.planner)
    scenario = scenario_from_arg(args.scenario)
    height, width = parse_size(
        args.size or (WORLDMODEL_SIZE if args.backend == "worldmodel" else RAYCAST_SIZE)
    )
    options = {}
    if args.backend == "worldmodel":
        options = {"model": args.model} | ({"num_steps": args.num_steps} if args.num_steps else {})
    try:
        config = make_env_config(
            "cvd-sim demo",
            scenario=scenario,
            backend=args.backend,
            backend_options=options,
            control=planner.control,
            image_height=height,
            image_width=width,
            max_steps=args.steps,
            seed=args.seed,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None

    try:
        env = DrivingEnv(config, render_mode="rgb_array")
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"--backend {args.backend}: {err}") from None
    truth = None if args.backend != "worldmodel" else RaycastBackend(env.rig, 1)
    obs, info = env.reset()
    planner.reset(env.scenario_info())
    if truth is not None:
        gt = truth.reset(0, env.scenario, env._snap, env.world.seed)
    frames, steps = [env.render() if truth is None else side_by_side(env, gt)], []
    with tqdm(total=env.horizon, desc=f"demo {scenario.name} ({args.backend})", unit="step") as bar:
        while True:
            snap = env.advance(planner.act(obs, info))
            frame = env.backend.render([(env.slot, snap)])[0]
            obs, reward, terminated, truncated, info = env.finish_step(frame)
            record = {"step": info["step"], "time": info["time"], "reward": reward, **info["metrics"]}
            if truth is None:
                frames.append(env.render())
            else:
                gt = truth.render([(0, snap)])[0]
                frames.append(side_by_side(env, gt))
                record.update(fidelity(frame, gt))
            steps.append(record)
            bar.update()
            if terminated or truncated:
                break
    env.close()
    args.out.mkdir(parents=True, exist_ok=True)
    video = write_video(args.out / f"{scenario.name}_{args.backend}.mp4", frames, fps=1.0 / scenario.dt)
    end = episode_end(info)
    metrics = {
        "scenario": scenario.name,
        "backend": args.backend,
        "planner": args.planner,
        "image_size": [height, width],
        "steps": len(steps),
        "end": end,
        "episode_return": float(sum(s["reward"] for s in steps)),
        "scores": info["episode_scores"],
        "per_step": steps,
        **({} if truth is None else {"fidelity": mean_fidelity(steps)}),
        "video": str(video),
    }
    text = json.dumps(metrics, indent=1, default=float)
    (args.out / "metrics.json").write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    scores = info["episode_scores"]
    print(
        f"{scenario.name}: {len(steps)} steps, ended by {end}; nuPlan score {scores['nuplan_score']:.3f}, "
        f"PDMS {scores['pdms']:.3f}, route completion {scores['route_completion']:.3f}, "
        f"arena {scores['arena_score']:.3f}"
    )
    print(f"wrote {video} and {args.out / 'metrics.json'}")
    return 0
