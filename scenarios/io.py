"""Scenario files: load and save YAML or JSON, turning every kind of bad input into `ScenarioError`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from cvd_sim.scenarios.errors import Problem, ScenarioError
from cvd_sim.scenarios.schema import SCHEMA_VERSION, Scenario
from pydantic import ValidationError

_BEHAVIOR_TAGS = {"static", "constant_velocity", "idm", "waypoints", "trigger"}


def _field_path(loc: tuple) -> str:
    """Pydantic error location -> dotted path, without the discriminator tags pydantic inserts."""
    parts = []
    for i, item in enumerate(loc):
        if (
            isinstance(item, str)
            and item in _BEHAVIOR_TAGS
            and i > 0
            and loc[i - 1] in ("behavior", "before", "after")
        ):
            continue
        if isinstance(item, str) and item.startswith("function-"):
            continue
        parts.append(str(item))
    return ".".join(parts)


def problems_from_validation_error(err: ValidationError, file: str) -> list[Problem]:
    return [Problem(file, _field_path(e["loc"]), e["msg"]) for e in err.errors()]


def scenario_from_dict(data: Any, file: str = "<memory>") -> Scenario:
    """Validate a plain dict (as read from YAML/JSON) into a `Scenario`; raises `ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError.single(
            "", f"expected a mapping at the top level, got {type(data).__name__}", file
        )
    version = data.get("schema_version")
    if version is None:
        raise ScenarioError.single(
            "schema_version", f"missing (this cvd-sim reads version {SCHEMA_VERSION})", file
        )
    if version != SCHEMA_VERSION:
        raise ScenarioError.single(
            "schema_version", f"unsupported version {version!r} (this cvd-sim reads {SCHEMA_VERSION})", file
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(problems_from_validation_error(err, file)) from None
    except ScenarioError as err:
        raise err.with_file(file) from None
    except RecursionError:
        raise ScenarioError.single("", "document nested too deeply", file) from None


def parse_text(text: str, file: str = "<memory>") -> Any:
    """YAML (a superset of JSON) text -> plain data; raises `ScenarioError` on a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ScenarioError.single(
            "", f"invalid YAML/JSON{where}: {getattr(err, 'problem', err)}", file
        ) from None
    except (RecursionError, ValueError, OverflowError) as err:
        raise ScenarioError.single("", f"invalid YAML/JSON: {err}", file) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a .yaml/.yml/.json file; raises `ScenarioError` naming the file and field."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError.single(
            "", f"cannot read: {err.strerror if isinstance(err, OSError) else err}", file
        ) from None
    return scenario_from_dict(parse_text(text, file), file)


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """Plain JSON-compatible data of a scenario (every field written out)."""
    return scenario.model_dump(mode="json")


class _CompactDumper(yaml.SafeDumper):
    """Writes short lists and small mappings of scalars (points, routes, poses) on one line."""


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (int, float, str, bool))


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = len(data) <= 12 and all(_is_scalar(x) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = len(data) <= 4 and all(_is_scalar(v) and not isinstance(v, str) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_CompactDumper.add_representer(list, _represent_list)
_CompactDumper.add_representer(dict, _represent_dict)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_CompactDumper, sort_keys=False, width=120)


def save_scenario(scenario: Scenario, path: str | Path) -> Path:
    """Write a scenario as YAML (.yaml/.yml) or JSON (.json), chosen by the suffix."""
    path = Path(path)
    data = scenario_to_dict(scenario)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=1)
    elif path.suffix.lower() in (".yaml", ".yml"):
        text = dump_yaml(data)
    else:
        raise ScenarioError.single("", "unknown file type; use .yaml, .yml or .json", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
