"""`cvd-sim bench env`: env step time with a breakdown (dynamics, traffic, metrics, sensors, env overhead) and
vector-env throughput for N = 1, 2, 4 (native batched `DrivingVectorEnv` beside gymnasium's `SyncVectorEnv`).

The breakdown wraps the World's own traffic and metric calls of a live env (dynamics = the rest of
`World.step`: trajectory tracking and the bicycle model); sensors = the backend's render call; env overhead =
reward, observation and info assembly. The action comes from the IDM planner (its time is reported apart).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size

PHASES = ("dynamics", "traffic", "metrics", "sensors", "env_overhead", "total", "planner")


def register(subparsers) -> None:
    parser = subparsers.add_parser("env", help="env ms/step with a breakdown, vector-env throughput N=1,2,4")
    parser.add_argument("--backend", default="raycast", help="sensor backend (raycast, or module:Class)")
    parser.add_argument("--scenario", default="stalled_vehicle", help="library name, file or builder:NAME")
    parser.add_argument("--size", default="64x112", help="camera image size HxW")
    parser.add_argument("--steps", type=int, default=60, help="steps timed per measurement")
    parser.add_argument("--envs", default="1,2,4", help="vector sizes for the throughput table")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.set_defaults(func=handler)


def _timed(fn, bucket: dict, key: str):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] += time.perf_counter() - start

    return wrapper


def step_breakdown(config, steps: int) -> dict[str, float]:
    """Mean ms per step of each phase over `steps` steps of one env driven by the IDM planner."""
    from cvd_sim.agents.idm_lane_follower import IDMLaneFollower
    from cvd_sim.envs.driving_env import DrivingEnv

    env = DrivingEnv(config)
    planner = IDMLaneFollower()
    acc: dict[str, float] = defaultdict(float)
    done_steps = 0
    while done_steps < steps:
        obs, info = env.reset(seed=0)
        planner.reset(env.scenario_info())
        world = env.world
        world.traffic.step = _timed(world.traffic.step, acc, "traffic")
        world._record = _timed(world._record, acc, "metrics")
        world_step = world.step
        world.step = _timed(world_step, acc, "world")
        if env.backend is not None:
            env.backend.render = _timed(type(env.backend).render.__get__(env.backend), acc, "sensors")
        while done_steps < steps:
            start = time.perf_counter()
            action = planner.act(obs, info)
            acc["planner"] += time.perf_counter() - start
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            acc["total"] += time.perf_counter() - start
            done_steps += 1
            if terminated or truncated:
                break
    env.close()
    out = {
        "dynamics": acc["world"] - acc["traffic"] - acc["metrics"],
        "traffic": acc["traffic"],
        "metrics": acc["metrics"],
        "sensors": acc["sensors"],
        "env_overhead": acc["total"] - acc["world"] - acc["sensors"],
        "total": acc["total"],
        "planner": acc["planner"],
    }
    return {k: 1000.0 * v / steps for k, v in out.items()}


def vector_throughput(config, num_envs: int, steps: int, native: bool) -> float:
    """Env steps per second of a vector env of `num_envs` under a constant gentle action (auto-resetting)."""
    import gymnasium as gym

    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.vector import DrivingVectorEnv

    if native:
        venv = DrivingVectorEnv(num_envs, config)
    else:
        venv = gym.vector.SyncVectorEnv([lambda: DrivingEnv(config) for _ in range(num_envs)])
    venv.reset(seed=0)
    action = np.tile(np.array([[0.5, 0.0]], np.float32), (num_envs, 1))
    venv.step(action)  # warm-up: renderers built, caches filled
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(action)
    elapsed = time.perf_counter() - start
    venv.close()
    return num_envs * steps / elapsed


def handler(args) -> int:
    from cvd_sim.envs.config import EnvConfigError, make_env_config

    height, width = parse_size(args.size)
    if args.steps < 1:
        raise UserError(f"--steps: must be >= 1, got {args.steps}")
    try:
        sizes = [int(v) for v in args.envs.split(",")]
        if any(n < 1 for n in sizes):
            raise ValueError
    except ValueError:
        raise UserError(f"--envs: expected positive integers like 1,2,4, got {args.envs!r}") from None
    try:
        config = make_env_config(
            "cvd-sim bench env",
            scenario=args.scenario,
            backend=args.backend,
            image_height=height,
            image_width=width,
            privileged=False,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None

    with tqdm(total=1 + 2 * len(sizes), desc="bench env", unit="run") as bar:
        breakdown = step_breakdown(config, args.steps)
        bar.update()
        vector = {}
        for n in sizes:
            vector[n] = {
                kind: vector_throughput(config, n, max(args.steps // n, 5), kind == "native")
                for kind in ("native", "sync")
            }
            bar.update(2)

    print(
        f"env step, backend {args.backend}, {len(config.cameras)} views {height}x{width}, {args.steps} steps"
    )
    print(f"{'phase':14s} {'ms/step':>9s} {'share':>7s}")
    for key in PHASES:
        share = "" if key in ("total", "planner") else f"{100 * breakdown[key] / breakdown['total']:6.1f}%"
        print(f"{key:14s} {breakdown[key]:9.2f} {share:>7s}")
    base = vector[sizes[0]]["native"]
    print(
        f"\n{'N':>3s} {'native steps/s':>15s} {'sync steps/s':>13s} {'native/sync':>12s} {'native vs N=' + str(sizes[0]):>14s}"
    )
    for n in sizes:
        v = vector[n]
        print(
            f"{n:3d} {v['native']:15.1f} {v['sync']:13.1f} {v['native'] / v['sync']:12.2f} {v['native'] / base:14.2f}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "backend": args.backend,
            "scenario": args.scenario,
            "size": [height, width],
            "steps": args.steps,
            "ms_per_step": breakdown,
            "vector_steps_per_s": {str(n): v for n, v in vector.items()},
        }
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0
