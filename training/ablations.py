"""The paper's ablations at tiny scale, as one table (Table 2 of CVD-STORM):

(a) 0 vs 1 vs 3 reference frames: the shipped (fully trained) world model generates the held-out windows from k
    ground-truth frames (k = 0 is pure generation from the conditions).
(b) STORM-VAE latents vs plain-VAE latents at equal DiT training steps. The plain VAE is the VAE that STORM-VAE
    was fine-tuned from: the same tiny VAE trained on the same data with L_VAE only (`vae_tiny_plain.yaml`; it
    stands in for the pretrained SD3.5 VAE of the paper). A DiT is trained on each VAE's latents with the STORM
    run's config and `--dit-steps` steps (default: the STORM run's own, whose model is then reused). The plain VAE
    has no trained Gaussian decoder, so its depth AbsRel is n/a.

    python -m cvd_sim.training.ablations --storm-config tiny --plain-vae runs/vae_tiny_plain/final \
        --out runs/ablations --json ablations.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from cvd_sim.training.dit_eval import evaluate_world_model, format_table, load_world_model
from cvd_sim.training.dit_trainer import DiTTrainConfig, train_dit
from cvd_sim.training.engine import load_config, read_config_mapping, resolve_config_path

from cvd_sim.cli import UserError
from cvd_sim.models.clip_data import open_clips

REFERENCE_COUNTS = (0, 1, 3)


def arm_config(storm_config: Path, vae: Path, cache_dir: Path | None, run_dir: Path, steps: int) -> Path:
    """The STORM run's DiT config with another VAE / cache / run folder / step count, written beside run_dir."""
    raw = read_config_mapping(storm_config)
    raw["model"]["storm_vae"] = str(vae)
    if cache_dir is not None:
        raw["data"]["cache_dir"] = str(cache_dir)
    raw["run"]["out_dir"] = str(run_dir)
    raw["run"]["max_steps"] = steps
    raw.setdefault("optim", {})["warmup_steps"] = min(
        raw.get("optim", {}).get("warmup_steps", 0), steps // 10
    )
    path = run_dir.with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def _trained(config: Path) -> Path:
    """Train (or resume) the run of `config` unless its final WorldModel exists; -> the final folder."""
    final = load_config(config, DiTTrainConfig).run.out_dir / "final"
    if not (final / "dit").is_dir():
        train_dit(config, resume=True)
    return final


def run_ablations(
    storm_config: str | Path,
    plain_vae: str | Path,
    out_dir: str | Path,
    dit_steps: int | None = None,
    num_frames: int | None = None,
    num_steps: int = 20,
    guidance_scale: float = 2.0,
    max_clips: int | None = 8,
    seed: int = 0,
) -> list[tuple[str, dict[str, Any]]]:
    """Train what is missing (each run resumes) and evaluate every variant on the held-out split of the STORM
    config's data. Returns the table rows."""
    out_dir = Path(out_dir)
    plain_vae = Path(plain_vae)
    storm_path = resolve_config_path(str(storm_config), "dit")
    cfg = load_config(storm_path, DiTTrainConfig)
    if not (plain_vae / "vae").is_dir():
        raise UserError(f"{plain_vae}: no plain VAE here (`cvd-sim train vae --config tiny_plain`)")
    shipped = _trained(storm_path)
    steps = dit_steps or cfg.run.max_steps
    storm_arm = shipped
    if steps != cfg.run.max_steps:
        storm_arm = _trained(
            arm_config(storm_path, cfg.model.storm_vae, cfg.data.cache_dir, out_dir / "dit_storm_vae", steps)
        )
    plain_arm = _trained(
        arm_config(storm_path, plain_vae, out_dir / "latents_plain_vae", out_dir / "dit_plain_vae", steps)
    )

    data = cfg.data
    window = num_frames or cfg.stage.window_frames
    if data.root is None:
        raise UserError(f"{storm_path}: data.root: needed for the held-out clips")
    clips = open_clips(data.root, data.version, "val", window, data.height, data.width, window)
    common = {"num_steps": num_steps, "guidance_scale": guidance_scale, "max_clips": max_clips, "seed": seed}
    shipped_model = load_world_model(shipped)
    rows = [
        (
            f"(a) STORM-VAE, {k} reference frames, {cfg.run.max_steps} steps",
            evaluate_world_model(shipped_model, clips, num_references=k, **common),
        )
        for k in REFERENCE_COUNTS
    ]
    k = REFERENCE_COUNTS[-1]
    arms = [("STORM-VAE", storm_arm, True), ("plain VAE", plain_arm, False)]
    for name, folder, with_depth in arms:
        if folder == shipped:  # the same model and references as the last (a) row
            figures = rows[len(REFERENCE_COUNTS) - 1][1]
        else:
            world = load_world_model(folder)
            figures = evaluate_world_model(world, clips, num_references=k, with_depth=with_depth, **common)
        rows.append((f"(b) {name} latents, {k} reference frames, {steps} steps", figures))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storm-config", default="tiny", help="stage-2 preset or YAML of the STORM-VAE run")
    parser.add_argument(
        "--plain-vae", default="runs/vae_tiny_plain/final", help="plain VAE folder (L_VAE only)"
    )
    parser.add_argument("--out", default="runs/ablations")
    parser.add_argument(
        "--dit-steps", type=int, default=None, help="DiT steps of both (b) arms (default: the STORM run's)"
    )
    parser.add_argument(
        "--num-frames", type=int, default=None, help="window length (default: the training one)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--max-clips", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    try:
        rows = run_ablations(
            args.storm_config,
            args.plain_vae,
            args.out,
            args.dit_steps,
            args.num_frames,
            args.steps,
            args.guidance,
            args.max_clips,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
