"""`cvd-sim eval gs-oracle`: ground-truth pixel-aligned Gaussians, checked against a hand-written projection."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from cvd_sim.cli import main
from cvd_sim.models.gs_oracle_eval import (
    evaluate_ground_truth_splats,
    ground_truth_gaussians,
    render_with_true_sky,
)
from cvd_sim.models.storm_vae_eval import image_psnr_ssim

sys.path.insert(0, str(Path(__file__).parent))
from test_vae_analytic_scene import AnalyticClips


def _clip(**kwargs) -> dict:
    return default_collate([AnalyticClips(num_clips=1, **kwargs)[0]])


def test_gaussians_sit_on_their_pixels_at_true_depth():
    clip = _clip()
    frame = 2
    g = ground_truth_gaussians(clip, torch.tensor([frame]), ref_frame=0)
    # hand projection of the means into the frame's cameras, in world coordinates through float64 numpy
    k = clip["intrinsics"][0, frame].double().numpy()
    ego_to_world = clip["ego_to_world"][0].double().numpy()
    world_to_ref = np.linalg.inv(ego_to_world[0])
    depth = clip["depth"][0, frame, :, 0].numpy()
    means = g["means"].double().numpy()
    start = 0
    for view in range(k.shape[0]):
        cam_to_ref = world_to_ref @ ego_to_world[frame] @ clip["cam_to_ego"][0, frame, view].double().numpy()
        rows, cols = np.nonzero(depth[view] > 0.01)
        pts = means[start : start + len(rows)]
        start += len(rows)
        cam = (np.linalg.inv(cam_to_ref) @ np.c_[pts, np.ones(len(pts))].T)[:3]
        uv = (k[view] @ cam)[:2] / cam[2]
        np.testing.assert_allclose(uv[0], cols + 0.5, atol=1e-3)
        np.testing.assert_allclose(uv[1], rows + 0.5, atol=1e-3)
        np.testing.assert_allclose(cam[2], depth[view][rows, cols], rtol=1e-5)
    assert start == len(means)
    # colours are the pixels' own, the standard deviation is 0.25 px at the pixel's depth
    assert float(g["colors"].min()) >= 0.0 and float(g["colors"].max()) <= 1.0
    focal = float(k[0, 0, 0])
    first = depth[0][depth[0] > 0.01]
    np.testing.assert_allclose(g["scales"][: len(first), 0].numpy(), first / focal * 0.25, rtol=1e-5)


def test_depth_noise_has_the_asked_relative_spread():
    clip = _clip(height=32, width=64)
    frames = torch.tensor([0, 3])
    exact = ground_truth_gaussians(clip, frames, 0)
    noisy = ground_truth_gaussians(
        clip, frames, 0, depth_noise=0.1, generator=torch.Generator().manual_seed(1)
    )
    # the scale is proportional to the (noisy) depth, so their ratio is 1 + 0.1 N(0, 1) per pixel
    ratio = noisy["scales"][:, 0] / exact["scales"][:, 0] - 1.0
    assert float(ratio.std()) == pytest.approx(0.1, rel=0.1)
    assert abs(float(ratio.mean())) < 0.01


def test_render_in_its_own_camera_reproduces_the_image():
    clip = _clip(height=32, width=64)
    frame = 3
    g = ground_truth_gaussians(clip, torch.tensor([frame]), 0, scale=0.01)
    image = render_with_true_sky(g, clip, frame, 0)
    truth = clip["images"][0, frame]
    sky = (clip["depth"][0, frame] <= 0.01).expand_as(truth)
    torch.testing.assert_close(image[sky], truth[sky])
    psnr, _ = image_psnr_ssim(image, truth)
    # only gsplat's 0.3 px² dilation blurs the checker edges
    assert float(psnr.min()) > 25.0


def test_depth_noise_misplaces_points_in_the_other_frames():
    data = AnalyticClips(num_clips=1, height=32, width=64, num_frames=4)
    for seed in (0, 3):
        exact, noisy = evaluate_ground_truth_splats(data, (0,), (0.0, 0.5), seed=seed, progress=False)
        # seen from the frames the ego drove on to, points off their surface land on the wrong pixels
        assert exact["psnr_targets"] > noisy["psnr_targets"] + 0.3
    with pytest.raises(ValueError, match="do not fit"):
        evaluate_ground_truth_splats(data, (0, 9), progress=False)


def test_cli_errors_name_the_option(tmp_path, capsys):
    assert main(["eval", "gs-oracle", "--data", str(tmp_path / "missing")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", "gs-oracle", "--data", str(tmp_path), "--depth-noise", "0,x"]) == 2
    assert "--depth-noise" in capsys.readouterr().err
