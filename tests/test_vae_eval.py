"""`cvd-sim eval vae`: Table 3(a) metrics checked against hand computations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from cvd_sim.cli import main
from cvd_sim.models.storm_vae_eval import depth_errors, evaluate_storm_vae, image_psnr_ssim

sys.path.insert(0, str(Path(__file__).parent))
from test_vae_analytic_scene import AnalyticClips
from test_vae_model import _small_model


def test_psnr_and_ssim_against_hand_values():
    target = torch.zeros(2, 3, 16, 16)
    pred = target.clone()
    pred[0] += 0.2  # [-1,1] offset 0.2 -> 0.1 on [0,1]: MSE 0.01 -> 20 dB
    pred[1] = target[1]
    pred[1, :, 0, 0] = 0.2
    psnr, ssim = image_psnr_ssim(pred, target)
    assert float(psnr[0]) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr[1]) == pytest.approx(10 * math.log10(1 / (0.01 / (16 * 16))), abs=1e-3)
    assert float(ssim[0]) < 1.0
    _, ssim_same = image_psnr_ssim(target + 0.3, target + 0.3)
    torch.testing.assert_close(ssim_same, torch.ones(2))


def test_depth_errors_on_hand_numbers():
    pred = torch.tensor([10.0, 12.0, 30.0, 5.0])
    gt = torch.tensor([10.0, 10.0, 20.0, 0.0])
    e = depth_errors(pred, gt)
    assert float(e["count"]) == 3
    assert float(e["sq"]) == pytest.approx(0 + 4 + 100)
    assert float(e["rel"]) == pytest.approx(0 + 0.2 + 0.5)
    assert float(e["delta1"]) == 2  # ratios 1.0, 1.2 pass; 1.5 fails


def test_evaluate_reports_table_3a_columns():
    model = _small_model()
    data = AnalyticClips(num_clips=1)
    figures = evaluate_storm_vae(model, data, context_frames=(0, 2, 4, 6), progress=False)
    assert figures["clips"] == 1 and figures["depth_pixels"] > 0
    for key in ("vae_psnr", "vae_ssim", "gs_psnr", "depth_rmse", "depth_absrel", "depth_delta1"):
        assert math.isfinite(figures[key]), key
    images = data[0]["images"][None]
    with torch.no_grad():
        recon = model.decode(model.encode(images)).flatten(0, 2)
    mse = ((recon + 1) / 2 - (images.flatten(0, 2) + 1) / 2).square().mean(dim=(1, 2, 3))
    assert figures["vae_psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=1e-3)


def test_eval_cli_rejects_missing_inputs(tmp_path, capsys):
    assert main(["eval", "vae", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", "vae", "--checkpoint", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a StormVAE folder" in capsys.readouterr().err
