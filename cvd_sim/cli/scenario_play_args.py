"""Arguments of `cvd-sim scenario play`; the rollout itself (`scenario_play.py`, which pulls in torch and the
world) is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".gif", ".mp4")


def add_play_parser(scenario_subparsers) -> None:
    """Add the `play` action to the `cvd-sim scenario` subparsers."""
    p = scenario_subparsers.add_parser(
        "play", help="roll a scenario out with the autopilot; write an animated BEV"
    )
    p.add_argument("file", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True, help="animation file (.gif or .mp4)")
    p.add_argument("--seed", type=int, default=None, help="world seed (default: the scenario's)")
    p.add_argument(
        "--steps", type=int, default=None, help="stop after this many steps (default: the whole scenario)"
    )
    p.add_argument("--every", type=int, default=1, help="draw every n-th step")
    p.add_argument("--layout-size", type=int, nargs=2, default=(128, 224), metavar=("H", "W"))
    p.add_argument("--bev-size", type=int, default=512, help="BEV panel size in pixels")
    p.add_argument("--json", type=Path, default=None, help="write the episode scores here")
    p.set_defaults(func=_play)


def _play(args) -> int:
    from cvd_sim.cli.scenario_play import cmd_play

    return cmd_play(args)
