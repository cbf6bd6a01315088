"""`cvd-sim eval vae --checkpoint ... --data ...`: STORM-VAE on held-out clips, the paper's Table 3(a) columns."""

from __future__ import annotations

import json
from pathlib import Path

from cvd_sim.cli import UserError

COLUMNS = (
    ("vae_psnr", "VAE PSNR"),
    ("vae_ssim", "VAE SSIM"),
    ("gs_psnr", "GS PSNR"),
    ("depth_rmse", "D-RMSE"),
    ("depth_absrel", "AbsRel"),
    ("depth_delta1", "δ<1.25"),
)


def add_data_arguments(parser, num_frames: int, frames_help: str) -> None:
    """The held-out data options shared by `eval vae` and `eval dit`."""
    parser.add_argument("--data", required=True, help="nuScenes-layout folder (SynthDrive or nuScenes)")
    parser.add_argument("--version", default="v1.0-trainval")
    parser.add_argument("--split", default="val", choices=("val", "train", "all"))
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=112)
    parser.add_argument("--num-frames", type=int, default=num_frames, help=frames_help)


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a trained model on held-out clips")
    sub = parser.add_subparsers(dest="eval_model", required=True, metavar="MODEL")
    vae = sub.add_parser("vae", help="STORM-VAE: reconstruction PSNR/SSIM, GS-render PSNR, depth errors")
    vae.add_argument(
        "--checkpoint", required=True, help="StormVAE folder (vae/ + gaussian_decoder/) or a checkpoint"
    )
    add_data_arguments(vae, num_frames=19, frames_help="clip length")
    vae.add_argument("--context-frames", default="0,6,12,18", help="0-based context frame indices")
    vae.add_argument("--max-clips", type=int, default=None)
    vae.add_argument("--json", help="write the figures to this JSON file")
    vae.set_defaults(func=handle_vae)

    oracle = sub.add_parser(
        "gs-oracle",
        help="reference for the GS PSNR column: pixel-aligned Gaussians from ground-truth depth and colour",
    )
    add_data_arguments(oracle, num_frames=19, frames_help="clip length")
    oracle.add_argument("--context-frames", default="0,6,12,18", help="0-based context frame indices")
    oracle.add_argument("--depth-noise", default="0,0.05,0.1", help="relative depth noise levels (std)")
    oracle.add_argument("--scale", type=float, default=0.25, help="Gaussian standard deviation in pixels")
    oracle.add_argument("--max-clips", type=int, default=None)
    oracle.add_argument("--seed", type=int, default=0, help="seed of the depth noise")
    oracle.add_argument("--json", help="write the figures to this JSON file")
    oracle.set_defaults(func=handle_gs_oracle)

    dit = sub.add_parser("dit", help="world model: generated vs ground-truth PSNR/SSIM/depth AbsRel")
    dit.add_argument(
        "--checkpoint", required=True, help="WorldModel folder (vae/, gaussian_decoder/, dit/, ...)"
    )
    add_data_arguments(dit, num_frames=6, frames_help="window length")
    dit.add_argument("--num-references", type=int, default=3)
    dit.add_argument("--steps", type=int, default=20, help="Euler sampling steps")
    dit.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale (<=1 = off)")
    dit.add_argument("--max-clips", type=int, default=8)
    dit.add_argument("--seed", type=int, default=0)
    dit.add_argument("--inception-weights", default=None, help="local torch-fidelity Inception weights (FID)")
    dit.add_argument("--json", help="write the figures to this JSON file")
    dit.set_defaults(func=handle_dit)


def handle_dit(args) -> int:
    # imported on use: the evaluation lives in cvd_sim.training, which the core does not import at load time
    import importlib

    return importlib.import_module("cvd_sim.training.dit_eval").run_from_cli(args)


def _model_folder(path: Path) -> Path:
    for candidate in (path, path / "model", path / "final"):
        if (candidate / "vae").is_dir() and (candidate / "gaussian_decoder").is_dir():
            return candidate
    raise UserError(f"{path}: not a StormVAE folder (expected vae/ and gaussian_decoder/ inside)")


def _numbers(text: str, option: str, kind: type) -> list:
    try:
        return [kind(x) for x in text.split(",")]
    except ValueError as err:
        raise UserError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from err


def _open_data(args):
    from cvd_sim.models.clip_data import open_clips

    if not Path(args.data).is_dir():
        raise UserError(f"--data: folder {args.data} does not exist")
    try:
        return open_clips(args.data, args.version, args.split, args.num_frames, args.height, args.width)
    except (ValueError, FileNotFoundError, AssertionError) as err:
        raise UserError(f"{args.data}: {err}") from err


def handle_gs_oracle(args) -> int:
    from cvd_sim.models.gs_oracle_eval import evaluate_ground_truth_splats

    context = _numbers(args.context_frames, "--context-frames", int)
    noises = _numbers(args.depth_noise, "--depth-noise", float)
    if any(x < 0 for x in noises) or args.scale <= 0:
        raise UserError("--depth-noise must be >= 0 and --scale > 0")
    dataset = _open_data(args)
    try:
        rows = evaluate_ground_truth_splats(dataset, context, noises, args.scale, args.max_clips, args.seed)
    except ValueError as err:
        raise UserError(f"{args.data}: {err}") from err
    print("depth noise | PSNR non-context frames | PSNR context frames")
    for row in rows:
        print(f"{row['depth_noise']:.3f} | {row['psnr_targets']:.4f} | {row['psnr_context']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def handle_vae(args) -> int:
    import torch

    from cvd_sim.models.storm_vae import StormVAE
    from cvd_sim.models.storm_vae_eval import evaluate_storm_vae

    context = _numbers(args.context_frames, "--context-frames", int)
    if not Path(args.data).is_dir():
        raise UserError(f"--data: folder {args.data} does not exist")
    try:
        model = StormVAE.from_pretrained(_model_folder(Path(args.checkpoint)))
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"{args.checkpoint}: cannot load the model: {err}".replace("\n", " ")) from err
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    dataset = _open_data(args)
    try:
        figures = evaluate_storm_vae(model, dataset, context, max_clips=args.max_clips)
    except (ValueError, FileNotFoundError, AssertionError) as err:
        raise UserError(f"{args.data}: {err}") from err
    print(" | ".join(title for _, title in COLUMNS))
    print(" | ".join(f"{figures[key]:.4f}" for key, _ in COLUMNS))
    print(f"({figures['clips']} clips, {figures['depth_pixels']} depth pixels)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0
