"""The scenario library: `scenarios/library/*.yaml`, shipped with the package."""

from __future__ import annotations

from pathlib import Path

from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.schema import Scenario

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


def library_paths() -> list[Path]:
    """The library's scenario files, sorted by name."""
    return sorted(LIBRARY_DIR.glob("*.yaml"))


def library_names() -> list[str]:
    return [p.stem for p in library_paths()]


def library_path(name: str) -> Path:
    """File of a library scenario given its name (file stem)."""
    path = LIBRARY_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"no library scenario {name!r}; known: {', '.join(library_names())}")
    return path


def load_library_scenario(name_or_path: str | Path) -> Scenario:
    """A library scenario by name, or any scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return load_scenario(path)
    return load_scenario(library_path(str(name_or_path)))
