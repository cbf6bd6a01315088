"""`cvd-sim bench NAME [OPTIONS]`: runs one benchmark from `cvd_sim.bench`; each module there that defines
`register(subparsers)` is one benchmark. Modules are imported only when their benchmark runs (they pull in torch
and open3d), so `cvd-sim --help` stays fast."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import cvd_sim.bench as bench_pkg


def benchmarks() -> dict[str, str]:
    """Benchmark name -> the first line of its module docstring, read from source without importing it."""
    found = {}
    for info in sorted(pkgutil.iter_modules(bench_pkg.__path__), key=lambda m: m.name):
        origin = importlib.util.find_spec(f"{bench_pkg.__name__}.{info.name}").origin
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body):
            summary = (ast.get_docstring(tree) or "").split("\n\n")[0].replace("\n", " ")
            found[info.name] = summary.split("`: ", 1)[-1]  # drop the leading "`cvd-sim bench NAME`: "
    return found


def register(subparsers) -> None:
    names = benchmarks()
    listing = "\n".join(f"  {name:8s} {doc}" for name, doc in names.items())
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks: print a table of side-by-side ratios, write JSON",
        description=f"benchmarks:\n{listing}\n\n`cvd-sim bench NAME --help` lists a benchmark's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bench", choices=sorted(names), metavar="NAME", help=", ".join(sorted(names)))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    parser.set_defaults(func=handler)


def benchmark_args(args: argparse.Namespace) -> argparse.Namespace:
    """Import the chosen benchmark and parse its own options -> its namespace (with `func`)."""
    module = importlib.import_module(f"{bench_pkg.__name__}.{args.bench}")
    parser = argparse.ArgumentParser(prog="cvd-sim bench")
    module.register(parser.add_subparsers(dest="bench", required=True, metavar="NAME"))
    return parser.parse_args([args.bench, *args.options])


def handler(args) -> int:
    inner = benchmark_args(args)
    return int(inner.func(inner) or 0)
