"""`cvd-sim scenario list|show|validate|new|edit|plot|convert`: author, check and inspect scenarios."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from cvd_sim.cli import UserError
from cvd_sim.cli.scenario_play_args import add_play_parser
from cvd_sim.scenarios.builders import BUILDERS, sweep
from cvd_sim.scenarios.editors import ScenarioEditor
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.io import load_scenario, save_scenario
from cvd_sim.scenarios.library import LIBRARY_DIR, library_paths
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import Scenario

EDIT_OPS = (
    "add_agent", "move_agent", "rotate_agent", "resize_agent", "remove_agent", "clone_agent", "set_behavior",
    "set_trajectory", "set_ego", "add_lane", "remove_lane", "reshape", "add_road_line", "add_road_edge",
    "add_crosswalk", "add_stop_line", "remove_feature", "transform", "merge_map",
)  # fmt: skip


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenario", help="author, validate, plot and convert scenarios")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_play_parser(sub)

    p = sub.add_parser("list", help="list the library scenarios and the edge-case builders")
    p.add_argument("--json", type=Path, help="also write the listing as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="summarise a scenario")
    p.add_argument("file", type=Path)
    p.add_argument("--json", type=Path, help="also write the summary as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("validate", help="check scenario files; one line per problem, exit 2 if any")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--json", type=Path, help="write {file: [problems]} as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "new", help="build a scenario with an edge-case builder (-p to set, --sweep for grids)"
    )
    p.add_argument("builder", choices=sorted(BUILDERS), metavar="BUILDER", help=", ".join(sorted(BUILDERS)))
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...", help="grid over values")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .yaml/.json (a folder with --sweep)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("edit", help="apply one validated edit: OP KEY=VALUE ... (see --help)",
                       description="Operations: " + ", ".join(EDIT_OPS) + ". Values are YAML "
                       "(numbers, [lists], {maps}). Positions: x=, y= or lane=, s=, offset=. "
                       "merge_map takes other=FILE (a scenario whose map is merged).")  # fmt: skip
    p.add_argument("file", type=Path)
    p.add_argument("op", choices=EDIT_OPS, metavar="OP")
    p.add_argument("params", nargs="*", metavar="KEY=VALUE")
    p.add_argument("-o", "--out", type=Path, help="output file (default: edit in place)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("plot", help="draw the bird's-eye view of a scenario")
    p.add_argument("file", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, help="image file (.png, .pdf, .svg)")
    p.add_argument("--dpi", type=int, default=150)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("convert", help="convert between our YAML/JSON and ScenarioNet pickles (by suffix)")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.set_defaults(func=cmd_convert)


# ---------------------------------------------------------------- helpers


def _user_error(err: ScenarioError, file: str | None = None) -> UserError:
    lines = [
        p.line() if file is None or not p.file.startswith("<") else p._replace(file=file).line()
        for p in err.problems
    ]
    return UserError("\n".join(lines))


def _load(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as err:
        raise _user_error(err) from None


def _parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what}: {pair!r}: expected KEY=VALUE")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raise UserError(f"{what}: {key}: cannot parse value {value!r}") from None
    return out


def _check_params(fn, params: dict[str, Any], what: str) -> None:
    sig = inspect.signature(fn)
    known = [
        n
        for n, p in sig.parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"
    ]
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    for key in params:
        if key not in known and not has_var_kw:
            raise UserError(f"{what}: {key}: unknown parameter; known: {', '.join(known)}")
    missing = [n for n, p in sig.parameters.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in params and n != "self"]  # fmt: skip
    if missing:
        raise UserError(f"{what}: {missing[0]}: required parameter missing")


def _write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))


def _summary(sc: Scenario) -> dict[str, Any]:
    rmap = road_map(sc.map)
    return {
        "name": sc.name,
        "description": sc.description,
        "tags": sc.tags,
        "text": sc.scene.text,
        "time_of_day": sc.scene.time_of_day,
        "weather": sc.scene.weather,
        "duration_s": sc.duration,
        "dt_s": sc.dt,
        "seed": sc.seed,
        "map": {
            "name": sc.map.name,
            "lanes": len(sc.map.lanes),
            "lane_length_m": round(sum(lane.length for lane in rmap.lanes.values()), 1),
            "drivable_area_m2": round(rmap.drivable_area.area, 1),
            "road_lines": len(sc.map.road_lines),
            "crosswalks": len(sc.map.crosswalks),
            "stop_lines": len(sc.map.stop_lines),
        },
        "ego": {
            "pose": sc.ego.pose.model_dump(),
            "speed": sc.ego.speed,
            "route": sc.ego.route,
            "goal": sc.ego.goal,
        },
        "agents": [
            {
                "id": a.id,
                "category": a.category,
                "pose": a.pose.model_dump(),
                "speed": a.speed,
                "behavior": a.behavior.type,
            }
            for a in sc.agents
        ],
    }


# ---------------------------------------------------------------- actions


def cmd_list(args) -> int:
    rows = []
    for path in library_paths():
        try:
            sc = load_scenario(path)
            rows.append({"name": path.stem, "tags": sc.tags, "agents": len(sc.agents), "duration_s": sc.duration,
                         "map": sc.map.name, "text": sc.scene.text})  # fmt: skip
        except ScenarioError as err:
            rows.append({"name": path.stem, "error": str(err)})
    print(f"library: {LIBRARY_DIR}")
    for r in rows:
        if "error" in r:
            print(f"  {r['name']:<28} INVALID: {r['error']}")
        else:
            print(
                f"  {r['name']:<28} {r['map']:<22} {r['agents']:>2} agents {r['duration_s']:>5.1f} s  {r['text']}"
            )
    builders = {name: [p for p in inspect.signature(fn).parameters] for name, fn in sorted(BUILDERS.items())}
    print("builders (cvd-sim scenario new BUILDER -p KEY=VALUE):")
    for name, params in builders.items():
        print(f"  {name:<24} {', '.join(params)}")
    _write_json(args.json, {"library": rows, "builders": builders})
    return 0


def cmd_show(args) -> int:
    sc = _load(args.file)
    info = _summary(sc)
    m = info["map"]
    print(f"{sc.name}: {sc.description}")
    print(f"  scene: {sc.scene.text}  ({sc.duration:g} s at dt {sc.dt:g} s, seed {sc.seed})")
    print(f"  map {m['name']!r}: {m['lanes']} lanes ({m['lane_length_m']} m), drivable area {m['drivable_area_m2']} m², "
          f"{m['road_lines']} road lines, {m['crosswalks']} crosswalks, {m['stop_lines']} stop lines")  # fmt: skip
    e = sc.ego
    print(
        f"  ego: ({e.pose.x:.1f}, {e.pose.y:.1f}) yaw {e.pose.yaw:.2f} at {e.speed:g} m/s, route {e.route}, goal {e.goal}"
    )
    for a in sc.agents:
        print(f"  {a.id:<14} {a.category:<12} ({a.pose.x:7.1f}, {a.pose.y:7.1f}) yaw {a.pose.yaw:5.2f} "
              f"{a.speed:5.1f} m/s  {a.behavior.type}")  # fmt: skip
    _write_json(args.json, info)
    return 0


def cmd_validate(args) -> int:
    report: dict[str, list[dict[str, str]]] = {}
    for path in args.files:
        try:
            load_scenario(path)
            report[str(path)] = []
        except ScenarioError as err:
            report[str(path)] = [p._asdict() for p in err.problems]
            for p in err.problems:
                print(p.line(), file=sys.stderr)
    bad = sum(1 for v in report.values() if v)
    print(f"{len(report) - bad} of {len(report)} scenario files valid")
    _write_json(args.json, report)
    return 2 if bad else 0


def cmd_new(args) -> int:
    fn = BUILDERS[args.builder]
    params = _parse_pairs(args.param, f"new {args.builder}")
    grid = {}
    for item in args.sweep:
        key, sep, values = item.partition("=")
        if not sep:
            raise UserError(f"new {args.builder}: --sweep {item!r}: expected KEY=V1,V2,...")
        grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    _check_params(fn, {**params, **grid}, f"new {args.builder}")
    try:
        scenarios = sweep(fn, grid, **params) if grid else [fn(**params)]
    except ScenarioError as err:
        raise _user_error(err, f"new {args.builder}") from None
    except (ValueError, TypeError) as err:
        raise UserError(f"new {args.builder}: {err}") from None
    if grid:
        for sc in scenarios:
            path = save_scenario(sc, args.out / f"{sc.name.replace('=', '-')}.yaml")
            print(f"wrote {path}")
    else:
        print(f"wrote {_save(scenarios[0], args.out)}")
    return 0


def _save(sc: Scenario, path: Path) -> Path:
    try:
        return save_scenario(sc, path)
    except ScenarioError as err:
        raise _user_error(err) from None


def cmd_edit(args) -> int:
    sc = _load(args.file)
    params = _parse_pairs(args.params, f"{args.file}: {args.op}")
    editor = ScenarioEditor(sc)
    method = getattr(editor, args.op)
    if args.op == "merge_map":
        if "other" not in params:
            raise UserError(f"{args.file}: merge_map: other: required parameter missing (a scenario file)")
        params["other"] = _load(Path(str(params["other"]))).map
    _check_params(method, params, f"{args.file}: {args.op}")
    try:
        method(**params)
    except ScenarioError as err:
        raise _user_error(err, str(args.file)) from None
    except (TypeError, ValueError) as err:
        raise UserError(f"{args.file}: {args.op}: {err}") from None
    out = args.out or args.file
    print(f"wrote {_save(editor.scenario, out)}")
    return 0


def cmd_plot(args) -> int:
    from cvd_sim.scenarios.plot import save_plot

    sc = _load(args.file)
    try:
        path = save_plot(sc, args.out, dpi=args.dpi)
    except ValueError as err:  # unknown image format
        raise UserError(f"{args.out}: {err}") from None
    print(f"wrote {path}")
    return 0


def cmd_convert(args) -> int:
    from cvd_sim.scenarios.scenarionet import (
        from_scenarionet,
        read_scenarionet_pickle,
        to_scenarionet,
        write_scenarionet_pickle,
    )

    src_pkl, dst_pkl = args.src.suffix.lower() == ".pkl", args.dst.suffix.lower() == ".pkl"
    if src_pkl == dst_pkl:
        raise UserError(f"{args.src}: convert goes between a ScenarioNet .pkl and a .yaml/.json scenario")
    try:
        if src_pkl:
            sc, skipped = from_scenarionet(read_scenarionet_pickle(args.src), name=args.dst.stem)
            if skipped:
                print(f"skipped {len(skipped)} tracks/features our format cannot hold: {', '.join(skipped[:10])}"
                      + (" ..." if len(skipped) > 10 else ""))  # fmt: skip
            path = save_scenario(sc, args.dst)
        else:
            path = write_scenarionet_pickle(to_scenarionet(_load(args.src)), args.dst)
    except ScenarioError as err:
        raise _user_error(err, str(args.src)) from None
    print(f"wrote {path}")
    return 0
