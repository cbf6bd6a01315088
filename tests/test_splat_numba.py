"""The compiled CPU kernels (projection, tile plan, forward compositing) against their plain-torch references."""

from __future__ import annotations

import pytest
import torch
from test_splat_no_grad import _layered_scene
from test_splat_oracle import random_scene

from cvd_sim.splat import rasterize
from cvd_sim.splat.composite import RasterizeToPixels
from cvd_sim.splat.composite_no_grad import composite_no_grad
from cvd_sim.splat.composite_numba import RasterizeToPixelsNumba, composite_numba
from cvd_sim.splat.projection import project_gaussians
from cvd_sim.splat.projection_numba import project_gaussians_numba
from cvd_sim.splat.tiles import plan_tiles
from cvd_sim.splat.tiles_numba import plan_tiles_numba

SIZES = [(40, 24), (67, 35)]  # one with partial tiles on both edges


def _batched_scene(dtype):
    """random_scene with a leading batch of 2 (different Gaussians and cameras), some behind the camera."""
    scenes = [random_scene(seed, n=400, cameras=3, dtype=dtype) for seed in (5, 6)]
    means, quats, scales, opacities, colors, viewmats, Ks = (
        torch.stack([s[i] for s in scenes]) for i in range(7)
    )
    viewmats[1, :, :3, 3] += 0.4
    means[:, :20, 2] = -1.0  # behind every camera
    opacities[:, 20:30] = 0.001  # below 1/255
    return means, quats, scales, opacities, colors, viewmats, Ks


def _planned(scene, width, height):
    means, quats, scales, opacities, _, viewmats, Ks = scene
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, 0.01, 1e10, 0.3)
    n = means.shape[-2]
    args = (proj.means2d.reshape(-1, 2), proj.conics.reshape(-1, 3), proj.opacities.reshape(-1))
    return proj, args, (*args, proj.depths.reshape(-1), proj.valid.reshape(-1), n, width, height)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_projection_kernel_equals_the_torch_projection(dtype, width, height):
    scene = _batched_scene(dtype)
    args = (*scene[:4], *scene[5:], width, height, 0.01, 9.0, 0.3)  # the far plane culls some
    want, got = project_gaussians(*args), project_gaussians_numba(*args)
    for field in ("means2d", "conics", "depths", "opacities", "radii", "valid"):
        w, g = getattr(want, field), getattr(got, field)
        assert g.shape == w.shape and g.dtype == w.dtype, field
        assert torch.allclose(g.double(), w.double(), rtol=1e-6, atol=1e-6), field
    assert torch.equal(got.valid, want.valid) and torch.equal(got.radii, want.radii)
    assert 0 < int(want.valid.sum()) < want.valid.numel()  # some culled, some kept


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_plan_kernel_equals_the_torch_plan(dtype, width, height):
    for scene in (_layered_scene(dtype), random_scene(7, n=3000, dtype=dtype)):
        _, _, plan_args = _planned(scene, width, height)
        want, got = plan_tiles(*plan_args), plan_tiles_numba(*plan_args)
        for field, value in vars(want).items():
            other = getattr(got, field)
            assert torch.equal(other, value) if torch.is_tensor(value) else other == value, field
        assert int(want.tile_count.max()) > 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("feature_dim", [1, 4])
def test_compositing_kernel_matches_the_torch_walk(dtype, feature_dim):
    scene = _layered_scene(dtype)
    proj, (m2, con, op), plan_args = _planned(scene, 40, 24)
    plan = plan_tiles(*plan_args)
    feats = torch.cat([scene[4].repeat(2, 1), proj.depths.reshape(-1, 1)], dim=1)[:, -feature_dim:]
    want_img, want_alpha = composite_no_grad(m2, con, feats, op, plan, 2, 40, 24)
    got_img, got_alpha = composite_numba(m2, con, feats, op, plan, 2, 40, 24)
    assert got_img.shape == want_img.shape and got_alpha.shape == want_alpha.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12  # exp and summation order may differ in the last bit
    assert torch.allclose(got_img, want_img, rtol=tol, atol=tol)
    assert torch.allclose(got_alpha, want_alpha, rtol=tol, atol=tol)
    assert (want_alpha > 0.9998).float().mean() > 0.05  # the stop rule is exercised


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_differentiable_kernel_matches_the_torch_backward(dtype):
    """Values and all four gradients of `RasterizeToPixelsNumba` against the hand-written torch backward."""
    scene = _layered_scene(dtype)
    proj, flat, plan_args = _planned(scene, 40, 24)
    plan = plan_tiles(*plan_args)
    feats = torch.cat([scene[4].repeat(2, 1), proj.depths.reshape(-1, 1)], dim=1).detach()
    g = torch.Generator().manual_seed(0)
    w_img = torch.randn(2, 24, 40, 4, generator=g, dtype=dtype)
    w_alpha = torch.randn(2, 24, 40, 1, generator=g, dtype=dtype)
    results = []
    for composite in (RasterizeToPixels.apply, RasterizeToPixelsNumba.apply):
        leaves = [t.detach().clone().requires_grad_(True) for t in (flat[0], flat[1], feats, flat[2])]
        img, alpha = composite(*leaves, plan, 2, 40, 24)
        ((img * w_img).sum() + (alpha * w_alpha).sum()).backward()
        results.append([img.detach(), alpha.detach(), *(leaf.grad for leaf in leaves)])
    rtol = 1e-3 if dtype == torch.float32 else 1e-9  # T is recovered by division going back, as in gsplat
    for name, want, got in zip(("img", "alpha", "means2d", "conics", "feats", "opacities"), *results):
        scale = float(want.abs().max())
        assert scale > 0 and float((got - want).abs().max()) <= rtol * scale, name


def test_gradcheck_differentiable_kernel():
    scene = random_scene(2, n=40, dtype=torch.float64)
    _, flat, plan_args = _planned(scene, 40, 24)
    plan = plan_tiles(*plan_args)
    inputs = tuple(
        t.detach().clone().requires_grad_(True) for t in (flat[0], flat[1], scene[4].repeat(2, 1), flat[2])
    )
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: RasterizeToPixelsNumba.apply(a, b, c, d, plan, 2, 40, 24),
        inputs,
        eps=1e-6,
        atol=1e-5,
    )


@pytest.mark.parametrize("mode", ["RGB", "ED", "RGB+D"])
def test_rasterize_with_compiled_kernels_equals_the_torch_path(mode):
    """End to end through `rasterize`, batched, with and without gradients: cpu_kernels "numba" vs "torch"."""
    scene = _batched_scene(torch.float64)
    bg = torch.rand(2, 3, 3, dtype=torch.float64) if mode == "RGB" else None
    outputs = {}
    for kernels in ("numba", "torch"):
        leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
        with torch.no_grad():
            plain = rasterize(
                *leaves, *scene[5:], 67, 35, render_mode=mode, backgrounds=bg, cpu_kernels=kernels
            )
        renders, alphas, meta = rasterize(
            *leaves, *scene[5:], 67, 35, render_mode=mode, backgrounds=bg, cpu_kernels=kernels
        )
        (renders.nan_to_num().sum() + alphas.sum()).backward()
        outputs[kernels] = [plain[0], plain[1], renders.detach(), alphas.detach(), meta["radii"]]
        outputs[kernels] += [leaf.grad for leaf in leaves[:4]]  # colours get none in "ED"
    for i, (got, want) in enumerate(zip(outputs["numba"], outputs["torch"])):
        assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-9, atol=1e-9), i
    with pytest.raises(ValueError, match="cpu_kernels"):
        rasterize(*scene, 67, 35, cpu_kernels="cuda")
