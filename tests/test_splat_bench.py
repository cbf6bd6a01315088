"""The benchmark's dense reference renders what `rasterize` renders (so the reported speed-up is like for like)."""

from __future__ import annotations

import torch

from cvd_sim.bench.splat import _ours_depth, dense_rasterize, pixel_aligned_scene, random_scene, rig_cameras
from cvd_sim.cli import build_parser
from cvd_sim.cli.cmd_bench import benchmark_args
from cvd_sim.splat import rasterize


def test_dense_reference_agrees_with_rasterize():
    scene = random_scene(400, seed=3)
    viewmats, Ks = rig_cameras(24, 40)
    leaves = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
    dense_r, dense_a = dense_rasterize(**leaves, viewmats=viewmats, Ks=Ks, width=40, height=24)
    ours_r, ours_a, _ = rasterize(
        **scene, viewmats=viewmats, Ks=Ks, width=40, height=24, render_mode="RGB+ED"
    )
    assert dense_a.mean() > 0.05
    assert torch.allclose(dense_a, ours_a, atol=1e-4)
    assert torch.allclose(dense_r[..., :3], ours_r[..., :3], atol=1e-4)
    covered = dense_a[..., 0] > 0.05
    assert torch.allclose(dense_r[..., 3][covered], ours_r[..., 3][covered], rtol=1e-3)
    dense_r[..., :3].sum().backward()
    assert torch.isfinite(leaves["means"].grad).all() and leaves["means"].grad.abs().sum() > 0


def test_pixel_aligned_scene_has_one_gaussian_per_context_pixel():
    scene = pixel_aligned_scene(2, 8, 16, seed=0)
    assert scene["means"].shape == (2 * 6 * 8 * 16, 3)
    assert (scene["scales"] > 0).all() and torch.isfinite(scene["means"]).all()


def test_cli_registers_bench_splat():
    args = benchmark_args(
        build_parser().parse_args(["bench", "splat", "--repeats", "2", "--json", "out.json"])
    )
    assert args.repeats == 2 and str(args.json) == "out.json" and callable(args.func)


def test_depth_case_renders_the_newest_frames_surfaces():
    """The bench's env-step depth case: 3 context frames' pixel-aligned Gaussians cover the newest frame's
    views with metric depth (the surfaces lie 1..40 m away), without gradients."""
    scene = pixel_aligned_scene(3, 16, 28, seed=0)
    viewmats, Ks = rig_cameras(16, 28)
    with torch.no_grad():
        depth, alphas = _ours_depth(scene, viewmats, Ks, 28, 16)
    assert depth.shape == (6, 16, 28, 1) and not depth.requires_grad
    assert alphas.mean() > 0.9
    covered = alphas[..., 0] > 0.5
    assert (depth[..., 0][covered] > 0.5).all() and (depth[..., 0][covered] < 45.0).all()
