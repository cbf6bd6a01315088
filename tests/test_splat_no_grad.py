"""The forward-only compositing path (no gradient needed) against the autograd path and the dense oracle."""

from __future__ import annotations

import pytest
import torch
from test_splat_oracle import oracle_rasterize, random_scene

import cvd_sim.splat.composite_no_grad as composite_no_grad
from cvd_sim.splat import rasterize
from cvd_sim.splat.composite import RasterizeToPixels
from cvd_sim.splat.composite_numba import RasterizeToPixelsNumba
from cvd_sim.splat.projection import project_gaussians
from cvd_sim.splat.tiles import plan_tiles, sortable_bits


def _layered_scene(dtype: torch.dtype):
    """random_scene plus a stack of near-opaque wide Gaussians in front, so that many pixels hit T <= 1e-4."""
    means, quats, scales, opacities, colors, viewmats, Ks = random_scene(11, n=90, dtype=dtype)
    k = 8
    g = torch.Generator().manual_seed(12)
    wall = torch.randn(k, 3, generator=g, dtype=dtype) * torch.tensor([0.8, 0.5, 0.3], dtype=dtype)
    wall[:, 2] += 4.0
    return (
        torch.cat([means, wall]),
        torch.cat([quats, torch.randn(k, 4, generator=g, dtype=dtype)]),
        torch.cat([scales, torch.full((k, 3), 0.9, dtype=dtype)]),
        torch.cat([opacities, torch.full((k,), 0.97, dtype=dtype)]),
        torch.cat([colors, torch.rand(k, 3, generator=g, dtype=dtype)]),
        viewmats,
        Ks,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("feature_dim", [1, 4])
def test_no_grad_compositing_is_bit_identical_to_autograd_compositing(monkeypatch, dtype, feature_dim):
    """Same projected Gaussians and tile plan: `composite_no_grad` equals `RasterizeToPixels` bit for bit."""
    means, quats, scales, opacities, colors, viewmats, Ks = _layered_scene(dtype)
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, 40, 24, 0.01, 1e10, 0.3)
    n = means.shape[0]
    m2, con, op = proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3), proj.opacities.reshape(-1)
    plan = plan_tiles(m2, con, op, proj.depths.reshape(-1), proj.valid.reshape(-1), n, 40, 24)
    feats = torch.cat([colors.repeat(2, 1), proj.depths.reshape(-1, 1)], dim=1)[:, -feature_dim:]
    leaves = [t.detach().clone().requires_grad_(True) for t in (m2, con, feats, op)]
    want_img, want_alpha = RasterizeToPixels.apply(*leaves, plan, 2, 40, 24)
    monkeypatch.setattr(composite_no_grad, "TILES_PER_CHUNK", 2)  # several chunks of tiles
    got_img, got_alpha = composite_no_grad.composite_no_grad(m2, con, feats, op, plan, 2, 40, 24)
    assert torch.equal(got_img, want_img.detach()) and torch.equal(got_alpha, want_alpha.detach())
    assert (got_alpha > 0.9998).float().mean() > 0.05  # the stop rule is exercised


@pytest.mark.parametrize("mode", ["RGB+ED", "D"])
def test_no_grad_path_matches_oracle_and_skips_autograd(monkeypatch, mode):
    def fail(*args):
        raise AssertionError("the autograd compositing ran although no gradient is needed")

    monkeypatch.setattr(RasterizeToPixelsNumba, "apply", fail)
    scene = _layered_scene(torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
    with torch.no_grad():  # inputs that require grad, but grad mode is off
        renders, alphas, _ = rasterize(*leaves, *scene[5:], 40, 24, render_mode=mode)
    want_r, want_a = oracle_rasterize(*scene, 40, 24, 0.01, 1e10, 0.3, mode)
    assert torch.allclose(renders, want_r, atol=1e-4, rtol=0) and torch.allclose(alphas, want_a, atol=1e-4)
    assert 0.3 < alphas.mean() < 0.999


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sortable_bits_sort_like_the_floats(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=g, dtype=dtype) * torch.logspace(-30, 30, 5000, dtype=dtype)
    x[::7] = x[::7].round()  # ties and zeros
    x[::11] = -0.0  # ties with +0
    assert torch.equal(torch.argsort(sortable_bits(x), stable=True), torch.argsort(x, stable=True))
