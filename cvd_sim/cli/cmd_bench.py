"""`cvd-sim bench NAME`: runs one benchmark from `cvd_sim.bench` (each module there adds its own subcommand)."""

from __future__ import annotations

import importlib
import pkgutil

import cvd_sim.bench as bench_pkg


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmarks: print a table of side-by-side ratios, write JSON"
    )
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for info in sorted(pkgutil.iter_modules(bench_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{bench_pkg.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
