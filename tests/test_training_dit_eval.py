"""`eval dit` figures against brute-force recomputation, the CLI hook, and the ablation configs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cvd_sim.training.ablations import arm_config
from cvd_sim.training.dit_eval import (
    clip_conditions,
    evaluate_world_model,
    format_table,
    gs_depth,
)
from cvd_sim.training.dit_trainer import DiTTrainConfig
from cvd_sim.training.engine import load_config, resolve_config_path
from diffusers import FlowMatchEulerDiscreteScheduler
from torch.utils.data import default_collate

from cvd_sim.cli import UserError, build_parser
from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.text_encoder import ByteTextEncoder
from cvd_sim.pipelines.world_model import WorldModel

sys.path.insert(0, str(Path(__file__).parent))
from test_training_dit_trainer import TINY_DIT, BoxClips, tiny_vae


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    dit = CVDStormDiT.from_preset("tiny", **TINY_DIT)
    text = ByteTextEncoder(max_length=12, width=16, num_layers=1, num_heads=2, pooled_dim=16)
    return WorldModel(tiny_vae(), dit, text, FlowMatchEulerDiscreteScheduler())


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Images in [-1, 1] -> PSNR (dB) on [0, 1]."""
    mse = np.mean(((np.clip(a, -1, 1) + 1) / 2 - (np.clip(b, -1, 1) + 1) / 2) ** 2)
    return float(10 * np.log10(1.0 / mse))


def test_figures_match_a_brute_force_recomputation(world):
    clips = BoxClips(num_clips=1, num_frames=4, views=(0, 1, 2))
    figures = evaluate_world_model(world, clips, num_references=1, num_steps=2, seed=7, progress=False)
    assert figures["per_frame"]["psnr"][0] is None and figures["per_frame"]["depth_absrel"][0] is None
    assert figures["fid"] is None and "fid" in figures["skipped"] and "fvd" in figures["skipped"]

    clip = default_collate([clips[0]])
    images = clip["images"]
    latents = world.generate(
        clip_conditions(clip),
        world.encode(images[:, :1]),
        num_steps=2,
        guidance_scale=2.0,
        generator=torch.Generator().manual_seed(7),
    )
    decoded = world.decode(latents).numpy()
    depth = gs_depth(world, latents, clip, [1, 2, 3]).numpy()
    gt_depth = clip["depth"].numpy()
    for frame in (1, 2, 3):
        psnr = np.mean([numpy_psnr(decoded[0, frame, v], images[0, frame, v].numpy()) for v in range(3)])
        assert figures["per_frame"]["psnr"][frame] == pytest.approx(psnr, abs=1e-3)
        valid = gt_depth[0, frame] > 0.01
        pred = np.maximum(depth[0, frame - 1][valid], 1e-3)
        absrel = np.mean(np.abs(pred - gt_depth[0, frame][valid]) / gt_depth[0, frame][valid])
        assert figures["per_frame"]["depth_absrel"][frame] == pytest.approx(absrel, rel=1e-4)
    copy = np.mean(
        [numpy_psnr(images[0, 0, v].numpy(), images[0, f, v].numpy()) for f in (1, 2, 3) for v in range(3)]
    )
    assert figures["copy_last_reference_psnr"] == pytest.approx(copy, abs=1e-3)
    assert figures["psnr"] == pytest.approx(np.mean(figures["per_frame"]["psnr"][1:]), abs=1e-3)
    table = format_table([("k=1", figures), ("no depth", {**figures, "depth_absrel": None})])
    assert f"{figures['psnr']:.2f}" in table and "| no depth |" in table and "n/a" in table


def test_cli_hook_parses_and_rejects_a_missing_folder(tmp_path):
    args = build_parser().parse_args(
        [
            "eval",
            "dit",
            "--checkpoint",
            str(tmp_path),
            "--data",
            str(tmp_path / "none"),
            "--num-references",
            "1",
        ]
    )
    assert args.num_references == 1 and args.split == "val"
    with pytest.raises(UserError, match="--data"):
        args.func(args)


def test_ablation_arm_config_changes_only_vae_cache_run_and_steps(tmp_path):
    storm = resolve_config_path("tiny", "dit")
    path = arm_config(storm, tmp_path / "plain", tmp_path / "cache", tmp_path / "arms" / "dit_plain_vae", 40)
    assert path == tmp_path / "arms" / "dit_plain_vae.yaml"
    plain, reference = load_config(path, DiTTrainConfig), load_config(storm, DiTTrainConfig)
    assert plain.model.storm_vae == tmp_path / "plain" and plain.data.cache_dir == tmp_path / "cache"
    assert plain.run.out_dir == tmp_path / "arms" / "dit_plain_vae" and plain.run.max_steps == 40
    assert plain.optim.warmup_steps == 4  # a tenth of a short run at most
    assert plain.stage == reference.stage and plain.data.root == reference.data.root
    assert plain.model.dit == reference.model.dit and plain.data.resolutions == reference.data.resolutions


def test_eval_module_imports_without_torch():
    """The evaluation module stays light: torch and diffusers load only when a model is evaluated."""
    import subprocess

    code = "import sys, cvd_sim.training.dit_eval; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
