"""The paper's ablations at tiny scale, as one table (Table 2 of CVD-STORM):

(a) 0 vs 1 vs 3 reference frames: the same trained world model generates the held-out windows from k ground-truth
    frames (k = 0 is pure generation from the conditions).
(b) STORM-VAE latents vs plain-VAE latents at equal DiT training steps: the plain VAE is the same tiny VAE
    fine-tuned on the same data with L_VAE only (`loss.storm = 0`, so the Gaussian branch gets no gradient);
    a DiT is then trained on its latents with the STORM run's config and step count. The plain VAE has no trained
    Gaussian decoder, so its depth AbsRel is n/a.

    python -m cvd_sim.training.ablations --storm-config tiny --vae-config tiny --out runs/ablations --json ablations.json
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
from cvd_sim.training.engine import load_config, resolve_config_path
from cvd_sim.training.vae_trainer import train_vae

from cvd_sim.cli import UserError
from cvd_sim.models.clip_data import open_clips

REFERENCE_COUNTS = (0, 1, 3)


def plain_vae_config(vae_config: str | Path, out_dir: Path) -> Path:
    """The stage-1 config with the Gaussian branch switched off (L_VAE only), written to out_dir/plain_vae.yaml."""
    raw = yaml.safe_load(resolve_config_path(str(vae_config), "vae").read_text())
    raw.setdefault("loss", {})["storm"] = 0.0
    raw["stage"] = {
        **raw.get("stage", {}),
        "render_views_per_target": 1,
    }  # rendered but unused: keep it small
    raw["run"]["out_dir"] = str(out_dir / "plain_vae")
    path = out_dir / "plain_vae.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def plain_dit_config(storm_config: Path, plain_vae: Path, out_dir: Path) -> Path:
    """The STORM run's DiT config with the plain VAE's latents (own cache, own run folder, same steps)."""
    raw = yaml.safe_load(storm_config.read_text())
    raw["model"]["storm_vae"] = str(plain_vae)
    raw["data"]["cache_dir"] = str(out_dir / "latents_plain_vae")
    raw["run"]["out_dir"] = str(out_dir / "dit_plain_vae")
    path = out_dir / "dit_plain_vae.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_ablations(
    storm_config: str | Path,
    vae_config: str | Path,
    out_dir: str | Path,
    num_frames: int | None = None,
    num_steps: int = 20,
    guidance_scale: float = 2.0,
    max_clips: int | None = 8,
    seed: int = 0,
) -> list[tuple[str, dict[str, Any]]]:
    """Train what is missing (the STORM DiT run, the plain VAE, the plain-latent DiT; each resumes) and evaluate
    every variant on the held-out split of the STORM config's data. Returns the table rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storm_path = resolve_config_path(str(storm_config), "dit")
    cfg = load_config(storm_path, DiTTrainConfig)
    if not (cfg.run.out_dir / "final" / "dit").is_dir():
        train_dit(storm_path, resume=True)
    plain_vae_path = plain_vae_config(vae_config, out_dir)
    if not (out_dir / "plain_vae" / "final" / "vae").is_dir():
        train_vae(plain_vae_path, resume=True)
    plain_path = plain_dit_config(storm_path, out_dir / "plain_vae" / "final", out_dir)
    if not (out_dir / "dit_plain_vae" / "final" / "dit").is_dir():
        train_dit(plain_path, resume=True)

    data = cfg.data
    window = num_frames or cfg.stage.window_frames
    if data.root is None:
        raise UserError(f"{storm_path}: data.root: needed for the held-out clips")
    clips = open_clips(data.root, data.version, "val", window, data.height, data.width, window)
    common = {"num_steps": num_steps, "guidance_scale": guidance_scale, "max_clips": max_clips, "seed": seed}
    storm = load_world_model(cfg.run.out_dir / "final")
    rows = [
        (f"STORM-VAE, {k} reference frames", evaluate_world_model(storm, clips, num_references=k, **common))
        for k in REFERENCE_COUNTS
    ]
    plain = load_world_model(out_dir / "dit_plain_vae" / "final")
    rows.append(
        (
            f"plain VAE, {REFERENCE_COUNTS[-1]} reference frames",
            evaluate_world_model(
                plain, clips, num_references=REFERENCE_COUNTS[-1], with_depth=False, **common
            ),
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storm-config", default="tiny", help="stage-2 preset or YAML of the STORM-VAE run")
    parser.add_argument(
        "--vae-config", default="tiny", help="stage-1 preset or YAML the plain VAE starts from"
    )
    parser.add_argument("--out", default="runs/ablations")
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
            args.vae_config,
            args.out,
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
