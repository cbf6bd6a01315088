"""`cvd-sim data synth`: generate a SynthDrive dataset in the nuScenes layout (resumable, deterministic)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cvd_sim.cli import UserError


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """Parse "HxW" into (H, W); raises UserError on bad input."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{flag}: expected HxW such as 64x112, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise UserError(f"{flag}: height and width must be positive, got {text!r}")
    return h, w


def _positive(value: int, flag: str) -> int:
    if value <= 0:
        raise UserError(f"{flag}: must be positive, got {value}")
    return value


def _synth(args) -> int:
    from cvd_sim.data.synthdrive import SynthConfig, synthesize

    height, width = parse_size(args.size)
    config = SynthConfig(
        scenes=_positive(args.scenes, "--scenes"),
        frames=_positive(args.frames, "--frames"),
        height=height,
        width=width,
        fps=float(_positive(args.fps, "--fps")),
        seed=args.seed,
        version=args.version,
        keyframe_every=_positive(args.keyframe_every, "--keyframe-every"),
        lidar_azimuth_steps=_positive(args.lidar_columns, "--lidar-columns"),
    )
    _positive(args.workers, "--workers")
    if args.seed < 0:
        raise UserError(f"--seed: must be >= 0, got {args.seed}")
    start = time.perf_counter()
    try:
        result = synthesize(config, args.out, workers=args.workers)
    except ValueError as err:
        raise UserError(str(err)) from None
    seconds = time.perf_counter() - start
    frames = result["rendered"] * config.frames
    figures = {
        **result,
        "frames_rendered": frames,
        "seconds": round(seconds, 2),
        "frames_per_second": round(frames / seconds, 3) if frames else 0.0,
        "out": str(Path(args.out).resolve()),
        "version": config.version,
    }
    print(
        f"SynthDrive {args.out}: {result['scenes']} scenes ({result['rendered']} rendered, {result['skipped']} already "
        f"done), {frames} frames x 6 cameras at {height}x{width} in {seconds:.1f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="datasets: generate SynthDrive")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = sub.add_parser("synth", help="render scenarios into a nuScenes-layout dataset (resumable)")
    synth.add_argument("--out", required=True, help="dataset folder (nuScenes dataroot)")
    synth.add_argument("--scenes", type=int, default=40)
    synth.add_argument("--frames", type=int, default=24, help="frames per scene")
    synth.add_argument("--size", default="64x112", help="image size HxW")
    synth.add_argument(
        "--fps", type=int, default=10, help="frames per second (12 with --keyframe-every 6 mimics nuScenes)"
    )
    synth.add_argument("--workers", type=int, default=1, help="parallel processes")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--version", default="v1.0-trainval", help="nuScenes table folder name")
    synth.add_argument(
        "--keyframe-every",
        type=int,
        default=1,
        help="annotated keyframe every K frames, sweeps between (nuScenes: 6)",
    )
    synth.add_argument("--lidar-columns", type=int, default=1084, help="LiDAR azimuth steps per sweep")
    synth.add_argument("--json", help="write the figures to this JSON file")
    synth.set_defaults(func=_synth)
