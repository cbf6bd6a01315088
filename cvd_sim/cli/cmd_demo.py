"""`cvd-sim demo`: a closed-loop rollout of a planner in a library edge-case scenario; writes a video of the six
views + depth + BEV panel and a metrics JSON. The env/agent packages are imported when the command runs."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size

DEFAULT_SCENARIO = "stalled_vehicle"  # library edge case: the IDM planner changes lanes around a stalled car


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="closed-loop rollout in a library scenario: video + metrics JSON"
    )
    parser.add_argument("--backend", default="raycast", help="sensor backend: raycast (or module:Class)")
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
    parser.add_argument("--size", default="128x224", help="camera image size HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics JSON here")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from cvd_sim.agents.registry import load_planner
    from cvd_sim.envs.config import EnvConfigError, make_env_config
    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.scenario_source import resolve_scenario
    from cvd_sim.scenarios.errors import ScenarioError
    from cvd_sim.viz.video import write_video

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps: must be >= 1, got {args.steps}")
    try:
        planner = load_planner(args.planner)
    except ValueError as err:
        raise UserError(f"--planner: {err}") from None
    try:
        scenario = resolve_scenario(args.scenario)
    except ScenarioError as err:
        raise UserError(str(err).splitlines()[0]) from None
    except ValueError as err:
        raise UserError(f"--scenario: {err}") from None
    height, width = parse_size(args.size)
    try:
        config = make_env_config(
            "cvd-sim demo",
            scenario=scenario,
            backend=args.backend,
            control=planner.control,
            image_height=height,
            image_width=width,
            max_steps=args.steps,
            seed=args.seed,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None

    env = DrivingEnv(config, render_mode="rgb_array")
    obs, info = env.reset()
    planner.reset(env.scenario_info())
    frames, steps = [env.render()], []
    with tqdm(total=env.horizon, desc=f"demo {scenario.name} ({args.backend})", unit="step") as bar:
        while True:
            obs, reward, terminated, truncated, info = env.step(planner.act(obs, info))
            frames.append(env.render())
            steps.append({"step": info["step"], "time": info["time"], "reward": reward, **info["metrics"]})
            bar.update()
            if terminated or truncated:
                break
    env.close()
    args.out.mkdir(parents=True, exist_ok=True)
    video = write_video(args.out / f"{scenario.name}_{args.backend}.mp4", frames, fps=1.0 / scenario.dt)
    end = (
        "collision"
        if info["collided"]
        else "offroad"
        if info["offroad"]
        else "goal"
        if info["goal_reached"]
        else "horizon"
    )
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
