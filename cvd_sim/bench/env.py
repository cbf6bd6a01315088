"""`cvd-sim bench env`: env step time with a breakdown (dynamics, traffic, metrics, sensors, env overhead) and
vector-env throughput for N = 1, 2, 4 (native batched `DrivingVectorEnv` beside gymnasium's `SyncVectorEnv`).

The breakdown wraps the World's own traffic and metric calls of a live env (dynamics = the rest of
`World.step`: trajectory tracking and the bicycle model); sensors = the backend's render call; env overhead =
reward, observation and info assembly. The action comes from the IDM planner (its time is reported apart).
The vector table also gives the process CPU time per env step, the work batching saves, robust to a loaded
machine.

With `--backend worldmodel` it also splits the sensor time (conditions, DiT sampling, VAE decode, Gaussian
depth), times the paper's settings (50 steps, CFG 3.5, depth splatted from 3 latents) against the fast
defaults in the same run, measures each speed technique by switching it off, and reports the peak resident
memory.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size

PHASES = ("dynamics", "traffic", "metrics", "sensors", "env_overhead", "total", "planner")
SENSOR_PHASES = ("conditions", "dit", "decode", "depth")


def register(subparsers) -> None:
    parser = subparsers.add_parser("env", help="env ms/step with a breakdown, vector-env throughput N=1,2,4")
    parser.add_argument(
        "--backend", default="raycast", help="sensor backend (raycast, worldmodel, module:Class)"
    )
    parser.add_argument("--model", default=None, help="worldmodel: WorldModel folder (default: shipped)")
    parser.add_argument("--scenario", default="stalled_vehicle", help="library name, file or builder:NAME")
    parser.add_argument("--size", default="64x112", help="camera image size HxW")
    parser.add_argument("--steps", type=int, default=60, help="steps timed per measurement")
    parser.add_argument("--envs", default="1,2,4", help="vector sizes for the throughput table")
    parser.add_argument(
        "--paper-steps", type=int, default=3, help="worldmodel: steps timed at the paper's settings"
    )
    parser.add_argument(
        "--technique-steps", type=int, default=4, help="worldmodel: steps timed per technique (0 = skip)"
    )
    parser.add_argument(
        "--techniques",
        default=None,
        help="worldmodel: comma-separated technique names to time (default: all of them)",
    )
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


def step_breakdown(config, steps: int, warmup: int = 0) -> dict[str, float]:
    """Mean ms per step of each phase over `steps` steps of one env driven by the IDM planner (after `warmup`
    untimed steps), plus `median_total`, `median_sensors` and, for a backend with `timings` (the world model),
    its own phases."""
    from cvd_sim.agents.idm_lane_follower import IDMLaneFollower
    from cvd_sim.envs.driving_env import DrivingEnv

    env = DrivingEnv(config)
    planner = IDMLaneFollower()
    acc: dict[str, float] = defaultdict(float)
    totals: list[float] = []
    sensors: list[float] = []
    backend_timings = getattr(env.backend, "timings", None)
    done_steps = 0
    while done_steps < steps:
        obs, info = env.reset(seed=0)
        planner.reset(env.scenario_info())
        world = env.world
        world.traffic.step = _timed(world.traffic.step, acc, "traffic")
        world._record = _timed(world._record, acc, "metrics")
        world_step = world.step
        world.step = _timed(world_step, acc, "world")
        for _ in range(warmup):
            obs, _, terminated, truncated, info = env.step(planner.act(obs, info))
        warmup = 0
        if env.backend is not None:
            env.backend.render = _timed(type(env.backend).render.__get__(env.backend), acc, "sensors")
        while done_steps < steps:
            start = time.perf_counter()
            action = planner.act(obs, info)
            acc["planner"] += time.perf_counter() - start
            before, sensors_before = dict(backend_timings or {}), acc["sensors"]
            start = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            totals.append(time.perf_counter() - start)
            sensors.append(acc["sensors"] - sensors_before)
            for key in SENSOR_PHASES if backend_timings is not None else ():
                acc["sensor_" + key] += backend_timings.get(key, 0.0) - before.get(key, 0.0)
            done_steps += 1
            if terminated or truncated:
                break
    env.close()
    acc["total"] = sum(totals)
    out = {
        "dynamics": acc["world"] - acc["traffic"] - acc["metrics"],
        "traffic": acc["traffic"],
        "metrics": acc["metrics"],
        "sensors": acc["sensors"],
        "env_overhead": acc["total"] - acc["world"] - acc["sensors"],
        "total": acc["total"],
        "planner": acc["planner"],
    }
    if backend_timings is not None:
        out.update({"sensor_" + k: acc["sensor_" + k] for k in SENSOR_PHASES})
    result = {k: 1000.0 * v / steps for k, v in out.items()}
    result["median_total"] = 1000.0 * float(np.median(totals))
    result["median_sensors"] = 1000.0 * float(np.median(sensors))
    return result


VECTOR_KINDS = ("native", "sharded", "sync")


def shard_workers(num_envs: int) -> int:
    """Processes of the "sharded" vector env: one per core, at most one per env."""
    return min(num_envs, os.cpu_count() or 1)


def vector_throughput(config, num_envs: int, steps: int, kind: str) -> tuple[float, float]:
    """(env steps per second, CPU ms of this process per env step) of a vector env of `num_envs` under a
    constant gentle action (auto-resetting). kind: "native" = `DrivingVectorEnv` (one batched backend),
    "sharded" = the same with its slots over one process per core (`backend_workers`), "sync" = gymnasium's
    `SyncVectorEnv` of single envs. The CPU time (all threads) is the work done, which a loaded machine does
    not inflate the way it inflates wall time; for "sharded" it misses the workers' share (NaN)."""
    import gymnasium as gym

    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.vector import DrivingVectorEnv

    if kind == "native":
        venv = DrivingVectorEnv(num_envs, config)
    elif kind == "sharded":
        venv = DrivingVectorEnv(num_envs, config, backend_workers=shard_workers(num_envs))
    else:
        venv = gym.vector.SyncVectorEnv([lambda: DrivingEnv(config) for _ in range(num_envs)])
    venv.reset(seed=0)
    action = np.tile(np.array([[0.5, 0.0]], np.float32), (num_envs, 1))
    for _ in range(3):  # warm-up: renderers built, caches filled, world-model reference windows full
        venv.step(action)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        venv.step(action)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    venv.close()
    cpu_ms = float("nan") if kind == "sharded" else 1000.0 * cpu / (num_envs * steps)
    return num_envs * steps / elapsed, cpu_ms


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _with_options(config, **options):
    from cvd_sim.envs.config import make_env_config

    return make_env_config(
        "cvd-sim bench env", **{**dict(config), "backend_options": {**config.backend_options, **options}}
    )


def technique_table(config, steps: int, names: list[str], warmup: int = 3) -> dict[str, dict]:
    """Per speed technique in `names`: median ms of the sensor call with it ON and OFF (each over the fast
    defaults, after `warmup` untimed steps that fill the reference window and compile what is compiled) and the
    speed-up."""
    from cvd_sim.envs.worldmodel_bench import TECHNIQUES

    table = {}
    for name in tqdm(names, desc="techniques", leave=False):
        what, on, off = TECHNIQUES[name]
        try:
            on_ms, off_ms = (
                step_breakdown(_with_options(config, **options), steps, warmup)["median_sensors"]
                for options in (on, off)
            )
        except Exception as err:  # e.g. torch.compile without a working C++ toolchain
            table[name] = {"what": what, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"}
            continue
        table[name] = {"what": what, "on_ms": on_ms, "off_ms": off_ms, "speedup": off_ms / on_ms}
    return table


def handler(args) -> int:
    from cvd_sim.envs.config import EnvConfigError, make_env_config

    height, width = parse_size(args.size)
    if args.steps < 1 or args.paper_steps < 1 or args.technique_steps < 0:
        raise UserError("--steps/--paper-steps: must be >= 1 (--technique-steps >= 0)")
    try:
        sizes = [int(v) for v in args.envs.split(",")]
        if any(n < 1 for n in sizes):
            raise ValueError
    except ValueError:
        raise UserError(f"--envs: expected positive integers like 1,2,4, got {args.envs!r}") from None
    worldmodel = args.backend == "worldmodel"
    options, model_note, names = {}, "", []
    if worldmodel:
        from cvd_sim.envs.worldmodel_bench import TECHNIQUES, model_for_bench

        names = list(TECHNIQUES)
        if args.techniques is not None:
            names = [n.strip() for n in args.techniques.split(",") if n.strip()]
            unknown = [n for n in names if n not in TECHNIQUES]
            if unknown or not names:
                raise UserError(
                    f"--techniques: unknown {unknown or names}; choose from {', '.join(TECHNIQUES)}"
                )

        folder, model_note = model_for_bench(args.model)
        options = {"model": folder}
        distilled = (Path(folder) / "dit_distilled").is_dir()
        model_note += ", fast defaults: " + ("distilled DiT, 1 step" if distilled else "3 steps")
    try:
        config = make_env_config(
            "cvd-sim bench env",
            scenario=args.scenario,
            backend=args.backend,
            backend_options=options,
            image_height=height,
            image_width=width,
            privileged=False,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None

    runs = 1 + len(VECTOR_KINDS) * len(sizes) + (2 if worldmodel else 0)
    paper = techniques = None
    with tqdm(total=runs, desc="bench env", unit="run") as bar:
        breakdown = step_breakdown(config, args.steps, warmup=1 if worldmodel else 0)
        bar.update()
        if worldmodel:
            from cvd_sim.envs.worldmodel_options import WorldModelOptions

            paper_options = WorldModelOptions.paper().model_dump(
                include={"distilled", "num_steps", "shift", "guidance_scale", "depth", "depth_context"}
            )
            paper = step_breakdown(_with_options(config, **paper_options), args.paper_steps, warmup=1)
            bar.update()
            techniques = technique_table(config, args.technique_steps, names) if args.technique_steps else {}
            bar.update()
        vector = {}
        for n in sizes:
            vector[n] = {}
            for kind in VECTOR_KINDS:
                if kind == "sharded" and shard_workers(n) == 1:  # the same env as "native"
                    rate, cpu_ms = vector[n]["native"], float("nan")
                else:
                    rate, cpu_ms = vector_throughput(config, n, max(args.steps // n, 5), kind)
                vector[n][kind], vector[n][kind + "_cpu_ms"] = rate, cpu_ms
                bar.update()
    peak = peak_rss_mb()

    print(
        f"env step, backend {args.backend}, {len(config.cameras)} views {height}x{width}, {args.steps} steps"
        + (f", {model_note}" if model_note else "")
    )
    print(f"{'phase':16s} {'ms/step':>9s} {'share':>7s}")
    keys = [*PHASES, *(["sensor_" + k for k in SENSOR_PHASES] if worldmodel else []), "median_total"]
    for key in keys:
        share = (
            ""
            if key in ("total", "planner", "median_total")
            else f"{100 * breakdown[key] / breakdown['total']:6.1f}%"
        )
        print(f"{key:16s} {breakdown[key]:9.2f} {share:>7s}")
    if paper is not None:
        ratio = paper["median_total"] / breakdown["median_total"]
        print(
            "\npaper settings (50 steps, CFG 3.5, depth from 3 latents): "
            f"median {paper['median_total']:.0f} ms/step; "
            f"fast defaults: median {breakdown['median_total']:.0f} ms/step -> {ratio:.1f}x faster"
        )
        if techniques:
            print(f"\n{'technique':20s} {'on ms':>9s} {'off ms':>9s} {'speed-up':>9s}  change")
            for name, row in techniques.items():
                if "error" in row:
                    print(f"{name:20s} {'-':>9s} {'-':>9s} {'-':>9s}  unavailable: {row['error']}")
                else:
                    print(
                        f"{name:20s} {row['on_ms']:9.1f} {row['off_ms']:9.1f} {row['speedup']:9.2f}  {row['what']}"
                    )
    base = vector[sizes[0]]["native"]
    base_cpu = vector[sizes[0]]["native_cpu_ms"]
    print(
        f"\n{'N':>3s} {'native steps/s':>15s} {'sharded steps/s':>16s} {'sync steps/s':>13s} "
        f"{'native vs N=' + str(sizes[0]):>14s} {'sharded vs N=' + str(sizes[0]):>15s} "
        f"{'native CPU ms/step':>18s} {'CPU work vs N=' + str(sizes[0]):>16s}"
    )
    for n in sizes:
        v = vector[n]
        print(
            f"{n:3d} {v['native']:15.2f} {v['sharded']:16.2f} {v['sync']:13.2f} {v['native'] / base:14.2f} "
            f"{v['sharded'] / base:15.2f} {v['native_cpu_ms']:18.1f} {base_cpu / v['native_cpu_ms']:16.2f}"
        )
    print(
        f"sharded: the envs' slots over {shard_workers(max(sizes))} processes (backend_workers), one per core"
    )
    print(f"\npeak resident memory: {peak:.0f} MB")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "backend": args.backend,
            "scenario": args.scenario,
            "size": [height, width],
            "steps": args.steps,
            "ms_per_step": breakdown,
            "vector_steps_per_s": {str(n): v for n, v in vector.items()},
            "peak_rss_mb": peak,
        }
        if paper is not None:
            data.update(
                model=model_note,
                paper_ms_per_step=paper,
                fast_vs_paper=paper["median_total"] / breakdown["median_total"],
                techniques=techniques,
            )
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0
