"""`cvd-sim evaluate --fidelity`: the world model's generated views and Gaussian depth against the raycast ground
truth along one closed-loop planner trajectory, at the fast and the paper's sampling settings."""

from __future__ import annotations

import json

from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size
from cvd_sim.cli.env_args import planner_from_arg, scenario_from_arg

SETTINGS = ("fast", "paper")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--fidelity",
        action="store_true",
        help="score the world model against the raycast ground truth along one planner trajectory",
    )
    parser.add_argument("--model", default=None, help="--fidelity: WorldModel folder (default: shipped)")
    parser.add_argument("--fidelity-steps", type=int, default=30, help="--fidelity: steps of the trajectory")
    parser.add_argument(
        "--settings", default="fast,paper", help="--fidelity: sampling settings to score (fast, paper)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--fidelity: override a WorldModelOptions field of the fast settings, e.g. num_steps=4 (repeatable; "
        "VALUE none = None)",
    )


def fast_options(overrides: list[str]):
    """WorldModelOptions() with `--option KEY=VALUE` overrides applied, validated like the env's options."""
    from pydantic import ValidationError

    from cvd_sim.envs.worldmodel_options import WorldModelOptions

    fields = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if (
            not sep
            or key.strip() not in WorldModelOptions.model_fields
            or key.strip() in ("model", "compile")
        ):
            known = ", ".join(k for k in WorldModelOptions.model_fields if k not in ("model", "compile"))
            raise UserError(f"--option {item!r}: expected KEY=VALUE with KEY one of {known}")
        fields[key.strip()] = None if value.strip().lower() in ("none", "null") else value.strip()
    try:
        return WorldModelOptions(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UserError(f"--option {field}: {first['msg']}") from None


def fidelity_handler(args) -> int:
    from cvd_sim.agents.fidelity import METRICS, plot_drift, run_fidelity
    from cvd_sim.envs.config import EnvConfigError, make_env_config
    from cvd_sim.envs.driving_env import DrivingEnv
    from cvd_sim.envs.scenario_source import expand_scenarios
    from cvd_sim.envs.worldmodel_backend import WorldModelBackend
    from cvd_sim.envs.worldmodel_bench import model_for_bench
    from cvd_sim.envs.worldmodel_options import WorldModelOptions
    from cvd_sim.pipelines import WorldModel

    if args.fidelity_steps < 1:
        raise UserError(f"--fidelity-steps: must be >= 1, got {args.fidelity_steps}")
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not settings or any(s not in SETTINGS for s in settings):
        raise UserError(f"--settings: choose from {', '.join(SETTINGS)}, got {args.settings!r}")
    fast = fast_options(args.option)
    spec = (args.planner or ["idm"])[0]
    planner = planner_from_arg(spec)
    try:
        ref = expand_scenarios(args.scenarios or ["stalled_vehicle"])[0]
    except ValueError as err:
        raise UserError(f"--scenarios: {err}") from None
    scenario = scenario_from_arg(ref, "--scenarios")
    height, width = parse_size(args.size)
    try:
        config = make_env_config(
            "cvd-sim evaluate --fidelity",
            scenario=scenario,
            backend="raycast",
            control=planner.control,
            image_height=height,
            image_width=width,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None
    folder, model_note = model_for_bench(args.model)
    try:
        model = WorldModel.from_pretrained(folder)
    except FileNotFoundError as err:
        raise UserError(f"--model: {err}") from None
    if fast.distilled and model.dit_distilled is None:
        raise UserError(f"--option distilled=true: {folder} has no dit_distilled/")
    if fast.distilled is None or fast.num_steps is None:  # resolve the defaults against this folder
        distilled = fast.use_distilled(model.dit_distilled is not None)
        fast = fast.model_copy(update={"distilled": distilled, "num_steps": fast.steps(distilled)})
    options = {"fast": fast, "paper": WorldModelOptions.paper()}

    def factory(name: str):
        fields = options[name].model_dump(exclude={"model", "compile"})
        return lambda rig: WorldModelBackend(rig, 1, world_model=model, **fields)

    env = DrivingEnv(config)
    steps = min(args.fidelity_steps, scenario.num_steps)
    with tqdm(total=steps, desc=f"fidelity {scenario.name}", unit="step") as bar:
        traces = run_fidelity(env, planner, {s: factory(s) for s in settings}, steps, args.seed, bar.update)
    env.close()

    summary = {name: trace.summary() for name, trace in traces.items()}
    print(
        f"fidelity vs raycast ground truth: {scenario.name}, planner {spec}, {height}x{width}, {model_note}"
    )
    fast_fields = fast.model_dump(
        include={"distilled", "num_steps", "shift", "guidance_scale", "depth", "depth_context"}
    )
    print("fast settings: " + ", ".join(f"{k}={v}" for k, v in fast_fields.items()))
    print(
        f"{'setting':8s} {'PSNR':>7s} {'SSIM':>6s} {'AbsRel':>7s} {'d<1.25':>7s} {'PSNR/step':>10s} {'AbsRel/step':>12s}"
    )
    for name, s in summary.items():
        print(
            f"{name:8s} {s['psnr']:7.2f} {s['ssim']:6.3f} {s['abs_rel']:7.3f} {s['delta1']:7.3f} "
            f"{s['psnr_slope']:+10.4f} {s['abs_rel_slope']:+12.5f}"
        )
    data = {
        "scenario": scenario.name,
        "planner": spec,
        "size": [height, width],
        "model": model_note,
        "steps": len(next(iter(traces.values())).per_step["psnr"]),
        "fast_options": fast.model_dump(exclude={"model", "compile"}),
        "summary": summary,
        "per_step": {name: {m: t.per_step[m] for m in METRICS} for name, t in traces.items()},
    }
    if {"fast", "paper"} <= set(summary):
        data["fast_minus_paper_psnr_db"] = summary["fast"]["psnr"] - summary["paper"]["psnr"]
        print(f"fast - paper PSNR: {data['fast_minus_paper_psnr_db']:+.2f} dB (target >= -1 dB)")
    args.out.mkdir(parents=True, exist_ok=True)
    plot = args.out / "fidelity_drift.png"
    plot_drift(traces, plot)
    text = json.dumps(data, indent=1, default=float)
    (args.out / "fidelity.json").write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    print(f"wrote {args.out / 'fidelity.json'} and {plot}")
    return 0
