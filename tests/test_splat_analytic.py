"""The CPU rasterizer against closed-form single-Gaussian images, culling rules, and torch.autograd.gradcheck."""

from __future__ import annotations

import math

import pytest
import torch

from cvd_sim.splat import rasterize
from cvd_sim.splat.composite import RasterizeToPixels
from cvd_sim.splat.projection import project_gaussians
from cvd_sim.splat.tiles import plan_tiles

F64 = torch.float64
W, H, FOCAL = 40, 30, 50.0


def camera(cx=W / 2, cy=H / 2):
    return torch.eye(4, dtype=F64)[None], torch.tensor(
        [[[FOCAL, 0, cx], [0, FOCAL, cy], [0, 0, 1]]], dtype=F64
    )


def expected_alpha(mean_px, cov2d, opacity):
    """Closed form: α = min(0.999, o·exp(-½ dᵀ Σ⁻¹ d)), zero below 1/255, at pixel centres (+0.5)."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=F64) + 0.5, torch.arange(W, dtype=F64) + 0.5, indexing="ij")
    d = torch.stack([xs - mean_px[0], ys - mean_px[1]], dim=-1)
    sigma = 0.5 * torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov2d), d)
    alpha = torch.clamp(opacity * torch.exp(-sigma), max=0.999)
    return torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))


def test_isotropic_gaussian_matches_closed_form():
    z, s, o = 5.0, 0.2, 0.8
    viewmats, Ks = camera(cx=20.3, cy=14.6)
    color = torch.tensor([[0.2, 0.6, 1.0]], dtype=F64)
    bg = torch.tensor([[0.5, 0.0, 0.25]], dtype=F64)
    args = (
        torch.tensor([[0.0, 0.0, z]], dtype=F64),
        torch.tensor([[2.0, 0.0, 0.0, 0.0]], dtype=F64),  # unnormalised identity
        torch.full((1, 3), s, dtype=F64),
        torch.tensor([o], dtype=F64),
        color,
        viewmats,
        Ks,
        W,
        H,
    )
    want = expected_alpha(
        torch.tensor([20.3, 14.6], dtype=F64), ((FOCAL * s / z) ** 2 + 0.3) * torch.eye(2, dtype=F64), o
    )
    renders, alphas, meta = rasterize(*args, render_mode="RGB+ED", backgrounds=bg)
    assert torch.allclose(alphas[0, ..., 0], want, atol=1e-10)
    assert torch.allclose(
        renders[0, ..., :3], want[..., None] * color + (1 - want[..., None]) * bg, atol=1e-10
    )
    assert torch.allclose(renders[0, ..., 3][want > 0], torch.full_like(want[want > 0], z), atol=1e-9)
    assert (renders[0, ..., 3][want == 0] == 0).all()
    depth, _, _ = rasterize(*args, render_mode="D")
    assert torch.allclose(depth[0, ..., 0], want * z, atol=1e-9)
    # radius = ceil(3.33 sqrt(λmax)) with λmax = (f s / z)² + 0.3
    assert meta["radii"][0, 0].tolist() == [math.ceil(3.33 * math.sqrt((FOCAL * s / z) ** 2 + 0.3))] * 2


def test_rotated_anisotropic_gaussian_matches_closed_form():
    z, angle = 6.0, 0.6
    sx, sy = 0.5, 0.1
    viewmats, Ks = camera()
    quat = torch.tensor([[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]], dtype=F64) * 0.3
    renders, alphas, _ = rasterize(
        torch.tensor([[0.0, 0.0, z]], dtype=F64),
        quat,
        torch.tensor([[sx, sy, 0.05]], dtype=F64),
        torch.tensor([0.9], dtype=F64),
        torch.ones(1, 1, dtype=F64),
        viewmats,
        Ks,
        W,
        H,
    )
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=F64)
    cov = (FOCAL / z) ** 2 * rot @ torch.diag(torch.tensor([sx**2, sy**2], dtype=F64)) @ rot.T
    want = expected_alpha(torch.tensor([W / 2, H / 2], dtype=F64), cov + 0.3 * torch.eye(2, dtype=F64), 0.9)
    assert torch.allclose(alphas[0, ..., 0], want, atol=1e-10)
    assert torch.allclose(renders[0, ..., 0], want, atol=1e-10)


@pytest.mark.parametrize(("z", "visible"), [(0.005, False), (0.5, True), (50.0, True), (150.0, False)])
def test_near_far_culling(z, visible):
    viewmats, Ks = camera()
    _, alphas, meta = rasterize(
        torch.tensor([[0.0, 0.0, z]], dtype=F64),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64),
        torch.full((1, 3), 0.02 * z, dtype=F64),
        torch.tensor([0.9], dtype=F64),
        torch.ones(1, 3, dtype=F64),
        viewmats,
        Ks,
        W,
        H,
        near_plane=0.01,
        far_plane=100.0,
    )
    assert bool(alphas.max() > 0.5) == visible
    assert bool(meta["radii"][0, 0, 0] > 0) == visible


def test_behind_camera_and_off_image_are_culled_without_nans():
    viewmats, Ks = camera()
    means = torch.tensor(
        [[0.0, 0.0, -3.0], [100.0, 0.0, 2.0], [0.0, 0.0, 4.0]], dtype=F64, requires_grad=True
    )
    renders, alphas, meta = rasterize(
        means,
        torch.tensor([[1.0, 0, 0, 0]] * 3, dtype=F64),
        torch.full((3, 3), 0.1, dtype=F64),
        torch.full((3,), 0.7, dtype=F64),
        torch.ones(3, 3, dtype=F64),
        viewmats,
        Ks,
        W,
        H,
    )
    assert meta["radii"][0, :, 0].tolist()[:2] == [0, 0] and meta["radii"][0, 2, 0] > 0
    (renders.sum() + alphas.sum()).backward()
    assert torch.isfinite(means.grad).all()
    assert (means.grad[:2] == 0).all() and (means.grad[2] != 0).any()


def tiny_scene(seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 4
    means = torch.randn(n, 3, generator=g, dtype=F64) * 0.4 + torch.tensor([0, 0, 3.0], dtype=F64)
    quats = torch.randn(n, 4, generator=g, dtype=F64)
    scales = torch.rand(n, 3, generator=g, dtype=F64) * 0.1 + 0.05
    opacities = torch.rand(n, generator=g, dtype=F64) * 0.6 + 0.3
    colors = torch.rand(n, 3, generator=g, dtype=F64)
    Ks = torch.tensor([[[12.0, 0, 6.2], [0, 12.0, 4.9], [0, 0, 1]]], dtype=F64)
    return means, quats, scales, opacities, colors, torch.eye(4, dtype=F64)[None], Ks


def test_gradcheck_full_rasterizer():
    means, quats, scales, opacities, colors, viewmats, Ks = tiny_scene()
    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors))
    bg = torch.tensor([[0.3, 0.1, 0.8]], dtype=F64)

    def fn(*p):
        renders, alphas, _ = rasterize(*p, viewmats, Ks, 13, 10, render_mode="RGB+ED", backgrounds=bg)
        return renders, alphas

    assert fn(*inputs)[1].max() > 0.5
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_gradcheck_compositing_function():
    """The hand-written backward of the compositing step alone, on 2D Gaussians with several layers."""
    means, quats, scales, opacities, colors, viewmats, Ks = tiny_scene(1)
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, 13, 10, 0.01, 1e10, 0.3)
    m2, con = proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3)
    op = proj.opacities.reshape(-1)
    plan = plan_tiles(m2, con, op, proj.depths.reshape(-1), proj.valid.reshape(-1), 4, 13, 10)
    inputs = tuple(t.detach().clone().requires_grad_(True) for t in (m2, con, colors, op))
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: RasterizeToPixels.apply(a, b, c, d, plan, 1, 13, 10), inputs, eps=1e-6, atol=1e-5
    )


def test_bad_arguments_are_rejected():
    scene = tiny_scene()
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(*scene, 13, 10, render_mode="RGBD")
    try:
        import gsplat  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="gsplat is not installed"):
            rasterize(*scene, 13, 10, use_gsplat=True)
