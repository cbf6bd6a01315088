"""Resolve what a user names as a scenario: a file, a library name, `builder:NAME`, or a `Scenario`."""

from __future__ import annotations

import glob
from pathlib import Path

import cvd_sim.scenarios as scenarios_pkg
from cvd_sim.scenarios.builders import BUILDERS
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.schema import Scenario

LIBRARY_DIR = Path(scenarios_pkg.__file__).resolve().parent / "library"
BUILDER_PREFIX = "builder:"


def library_names() -> list[str]:
    """Names of the scenarios in the shipped library (`scenarios/library/*.yaml`), sorted."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))


def resolve_scenario(ref: str | Path | Scenario) -> Scenario:
    """A `Scenario` from a path, a library name, `builder:NAME` or a `Scenario` (returned as is).

    Raises `ScenarioError` (file and field named) for a bad file, `ValueError` for an unknown name.
    """
    if isinstance(ref, Scenario):
        return ref
    text = str(ref)
    if text.startswith(BUILDER_PREFIX):
        name = text[len(BUILDER_PREFIX) :]
        if name not in BUILDERS:
            raise ValueError(f"unknown scenario builder {name!r}; known: {', '.join(sorted(BUILDERS))}")
        return BUILDERS[name]()
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        return load_scenario(path)
    library = LIBRARY_DIR / f"{text}.yaml"
    if library.exists():
        return load_scenario(library)
    raise ValueError(
        f"unknown scenario {text!r}: not a file, not in the library ({', '.join(library_names()) or 'empty'}), "
        f"and not builder:NAME ({', '.join(sorted(BUILDERS))})"
    )


def expand_scenarios(patterns: list[str]) -> list[str]:
    """Scenario references from glob patterns, library names and builder:NAME, in order, de-duplicated."""
    out: list[str] = []
    for pattern in patterns:
        if pattern.startswith(BUILDER_PREFIX) or not any(c in pattern for c in "*?["):
            matches = [pattern]
        else:
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ValueError(f"{pattern}: no scenario files match")
        out.extend(m for m in matches if m not in out)
    return out


__all__ = ["LIBRARY_DIR", "ScenarioError", "expand_scenarios", "library_names", "resolve_scenario"]
