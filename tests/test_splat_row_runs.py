"""Row runs (the columns of a box row that can reach α ≥ 1/255) never drop a pixel: the output is bit-identical
to testing every pixel of each Gaussian's box, for needle-like, rotated and barely visible Gaussians."""

from __future__ import annotations

import pytest
import torch

import cvd_sim.splat.passes as passes
from cvd_sim.splat import rasterize


def extreme_scene(dtype: torch.dtype, n: int = 400, seed: int = 3):
    """n Gaussians 3..12 m in front of one camera (64 x 48): anisotropy up to 300:1, opacities down to 1/255."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([2.5, 1.8, 0.0], dtype=dtype)
    means[:, 2] = 3.0 + 9.0 * torch.rand(n, generator=g, dtype=dtype)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.exp(torch.empty(n, 3, dtype=dtype).uniform_(-7.0, -0.7, generator=g))
    opacities = 1.0 / 255.0 + torch.rand(n, generator=g, dtype=dtype) ** 4  # many barely visible
    opacities = opacities.clamp(max=1.0)
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype)[None]
    Ks = torch.tensor([[50.0, 0, 32.3], [0, 50.0, 23.6], [0, 0, 1]], dtype=dtype)[None]
    return means, quats, scales, opacities, colors, viewmats, Ks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_runs_match_whole_box_enumeration(monkeypatch, dtype):
    scene = extreme_scene(dtype)
    leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
    renders, alphas, _ = rasterize(*leaves, *scene[5:], 64, 48, render_mode="RGB+ED")
    (renders.sum() + alphas.sum()).backward()
    assert alphas.max() > 0.5 and (alphas > 0).float().mean() > 0.5

    monkeypatch.setattr(passes, "COLUMN_SLACK", 16.0)  # every run covers its whole box row
    ref_leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
    want_r, want_a, _ = rasterize(*ref_leaves, *scene[5:], 64, 48, render_mode="RGB+ED")
    (want_r.sum() + want_a.sum()).backward()
    assert torch.equal(renders, want_r) and torch.equal(alphas, want_a)
    for got, ref in zip(leaves, ref_leaves):
        assert torch.equal(got.grad, ref.grad)
