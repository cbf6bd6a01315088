"""Command line: the `cvd-sim` entry point; each `cmd_*.py` module here adds one subcommand."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvd-sim", description="CVD-STORM closed-loop driving simulator")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"cvd-sim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cvd-sim: interrupted", file=sys.stderr)
        return 130
