"""`cvd-sim train MODEL --config PRESET_OR_YAML [--resume]`: stage-1 (vae) and stage-2 (dit) training."""

from __future__ import annotations

import importlib

# model name -> module exposing `run_from_cli(config: str, resume: bool, stop_at: int | None) -> int`
TRAINERS = {
    "vae": "cvd_sim.training.vae_trainer",
    "dit": "cvd_sim.training.dit_trainer",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (resumable; runs under `accelerate launch` too)"
    )
    parser.add_argument("model", choices=sorted(TRAINERS), help="which model to train")
    parser.add_argument("--config", required=True, help="preset name (e.g. tiny, full) or a YAML file")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir"
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        default=None,
        metavar="STEP",
        help="checkpoint and stop after this step (for time-sliced jobs); --resume continues",
    )
    parser.set_defaults(func=handler)


def handler(args) -> int:
    # imported on use: the trainers live in cvd_sim.training, which the core does not import at load time
    trainer = importlib.import_module(TRAINERS[args.model])
    return trainer.run_from_cli(args.config, resume=args.resume, stop_at=args.stop_at)
