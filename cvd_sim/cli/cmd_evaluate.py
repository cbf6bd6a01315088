"""`cvd-sim evaluate`: closed-loop evaluation of planners over scenarios (table, JSON, markdown report, videos).

The evaluation itself lives in `cvd_sim.agents.evaluation`; it is imported when the command runs, so the
core CLI does not import the env/agent packages at start-up.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from tqdm import tqdm

from cvd_sim.cli import UserError
from cvd_sim.cli.cmd_data import parse_size
from cvd_sim.cli.env_args import planner_from_arg, scenario_from_arg
from cvd_sim.cli.eval_fidelity import add_arguments, fidelity_handler


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="closed-loop evaluation of planners: nuPlan score, PDMS, RC, arena"
    )
    parser.add_argument(
        "--planner",
        action="append",
        default=None,
        help="constant_velocity | idm | pure_pursuit | nuplan_simple | module:Class (repeatable; "
        "default: idm and constant_velocity)",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=None,
        help="scenario files/globs, library names or builder:NAME (default: the whole library)",
    )
    parser.add_argument("--backend", default="raycast", help="sensor backend (raycast, or module:Class)")
    parser.add_argument("--out", type=Path, default=Path("out/evaluate"), help="output folder")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes over scenarios")
    parser.add_argument("--size", default="64x112", help="camera image size HxW")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the steps per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-video", action="store_true", help="skip the per-scenario videos (and sensor rendering)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results JSON here")
    add_arguments(parser)
    parser.set_defaults(func=handler)


def handler(args) -> int:
    if args.fidelity:
        return fidelity_handler(args)
    from cvd_sim.agents.evaluation import evaluate, results_json
    from cvd_sim.agents.report import format_table, write_markdown
    from cvd_sim.envs.config import EnvConfigError, make_env_config
    from cvd_sim.envs.scenario_source import LIBRARY_DIR, expand_scenarios

    planners = args.planner or ["idm", "constant_velocity"]
    for spec in planners:
        planner_from_arg(spec)
    if args.workers < 1:
        raise UserError(f"--workers: must be >= 1, got {args.workers}")
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps: must be >= 1, got {args.max_steps}")
    try:
        refs = expand_scenarios(args.scenarios or [str(LIBRARY_DIR / "*.yaml")])
    except ValueError as err:
        raise UserError(f"--scenarios: {err}") from None
    for ref in refs:
        scenario_from_arg(ref, "--scenarios")
    height, width = parse_size(args.size)
    videos = not args.no_video
    try:
        config = make_env_config(
            "cvd-sim evaluate",
            backend=args.backend,
            image_height=height,
            image_width=width,
            sensors=videos,
            max_steps=args.max_steps,
        )
    except EnvConfigError as err:
        raise UserError(str(err)) from None

    results = []
    with tqdm(total=len(refs) * len(planners), desc="episodes", unit="ep") as bar:
        for spec in planners:
            results += evaluate(
                spec,
                refs,
                config,
                args.out / "videos" if videos else None,
                args.workers,
                args.seed,
                progress=bar.update,
            )
    print(format_table(results))
    data = results_json(results)
    data["by_planner"] = {
        p: results_json([r for r in results if r.planner == p])["aggregate"] for p in planners
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, default=float)
    (args.out / "results.json").write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    report = write_markdown(results, args.out, "cvd-sim " + shlex.join(sys.argv[1:]))
    print(f"wrote {args.out / 'results.json'} and {report}")
    return 0
