"""The package layout: every folder with an __init__.py is installed, and the CLI starts."""

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {
    "scenarios": "cvd_sim.scenarios",
    "envs": "cvd_sim.envs",
    "agents": "cvd_sim.agents",
    "training": "cvd_sim.training",
}


def _package_name(folder: Path) -> str:
    parts = folder.relative_to(ROOT).parts
    head = MAPPED.get(parts[0], parts[0])
    return ".".join([head, *parts[1:]])


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top in ["cvd_sim", *MAPPED]:
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(_package_name(init.parent))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == set(), "these listed packages have no folder"


def test_cli_help_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "cvd_sim", "--help"], capture_output=True, text=True, check=True
    )
    assert "bench" in out.stdout


def test_cli_help_stays_light():
    """`cvd-sim --help` builds every subcommand's parser without importing torch, open3d or the benchmarks."""
    code = (
        "import sys\nfrom cvd_sim.cli import build_parser\nbuild_parser()\n"
        "print(sorted({'torch', 'open3d', 'cvd_sim.bench.splat'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_leaves_openmp_settings_alone():
    # OMP_WAIT_POLICY=PASSIVE, once set here, made every torch op wake sleeping threads: the DiT ran 2x slower
    prefixes = ("OMP_", "GOMP_", "KMP_")
    code = f"import os, cvd_sim.cli, cvd_sim.envs; print(sorted(k for k in os.environ if k.startswith({prefixes})))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
