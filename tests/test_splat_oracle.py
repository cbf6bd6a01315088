"""The CPU rasterizer against a brute-force dense oracle (every Gaussian against every pixel, same rules)."""

from __future__ import annotations

import math

import pytest
import torch

from cvd_sim.splat import rasterize


def oracle_rasterize(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, near, far, eps2d, mode
):
    """Dense reference for one camera batch: means [N, 3] ... viewmats [C, 4, 4] -> (renders, alphas).

    Written from gsplat's kernel rules, independently of cvd_sim: per pixel, Gaussians in depth order,
    σ = ½(a dx² + c dy²) + b dx dy, α = min(0.999, o e^-σ), skip σ < 0 or α < 1/255, stop before a Gaussian
    that takes T to ≤ 1e-4.
    """
    q = quats / quats.norm(dim=-1, keepdim=True)
    renders, alphas = [], []
    for cam in range(viewmats.shape[0]):
        view, K = viewmats[cam], Ks[cam]
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=means.dtype) + 0.5,
            torch.arange(width, dtype=means.dtype) + 0.5,
            indexing="ij",
        )
        px, py = xs.reshape(-1), ys.reshape(-1)
        items = []
        for i in range(means.shape[0]):
            p = view[:3, :3] @ means[i] + view[:3, 3]
            if p[2] < near or p[2] > far:
                continue
            w, x, y, z = q[i]
            R = torch.stack(
                [
                    torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
                    torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
                    torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
                ]
            )
            cov_world = R @ torch.diag(scales[i] ** 2) @ R.T
            cov_cam = view[:3, :3] @ cov_world @ view[:3, :3].T
            limx_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
            limx_neg = cx / fx + 0.3 * (0.5 * width / fx)
            limy_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
            limy_neg = cy / fy + 0.3 * (0.5 * height / fy)
            u = torch.minimum(torch.maximum(p[0] / p[2], -limx_neg), limx_pos)
            v = torch.minimum(torch.maximum(p[1] / p[2], -limy_neg), limy_pos)
            zero = torch.zeros((), dtype=means.dtype)
            J = torch.stack(
                [
                    torch.stack([fx / p[2], zero, -fx * u / p[2]]),
                    torch.stack([zero, fy / p[2], -fy * v / p[2]]),
                ]
            )
            cov2 = J @ cov_cam @ J.T + eps2d * torch.eye(2, dtype=means.dtype)
            det = cov2[0, 0] * cov2[1, 1] - cov2[0, 1] * cov2[1, 0]
            if det <= 0:
                continue
            conic = torch.linalg.inv(cov2)
            mean2 = torch.stack([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
            feat = colors[i] if mode.startswith("RGB") else p[2:3]
            if mode in ("RGB+D", "RGB+ED"):
                feat = torch.cat([colors[i], p[2:3]])
            items.append((p[2].item(), i, mean2, conic, feat))
        items.sort(key=lambda it: (it[0], it[1]))
        trans = torch.ones(px.shape[0], dtype=means.dtype)
        done = torch.zeros(px.shape[0], dtype=torch.bool)
        dim = 1 if mode in ("D", "ED") else colors.shape[1] + (1 if "+" in mode else 0)
        out = torch.zeros(px.shape[0], dim, dtype=means.dtype)
        for _, i, mean2, conic, feat in items:
            dx, dy = mean2[0] - px, mean2[1] - py
            sigma = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
            alpha = torch.clamp(opacities[i] * torch.exp(-sigma), max=0.999)
            use = (~done) & (sigma >= 0) & (alpha >= 1.0 / 255.0)
            stop = use & (trans * (1 - alpha) <= 1e-4)
            done = done | stop
            use = use & ~stop
            out = out + torch.where(use, alpha * trans, 0.0)[:, None] * feat
            trans = torch.where(use, trans * (1 - alpha), trans)
        acc = 1 - trans
        if mode in ("ED", "RGB+ED"):
            out = torch.cat([out[:, :-1], out[:, -1:] / acc.clamp(min=1e-10)[:, None]], dim=1)
        renders.append(out.reshape(height, width, dim))
        alphas.append(acc.reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)


def random_scene(seed, n=60, cameras=2, width=40, height=24, dtype=torch.float64):
    """Gaussians in front of two slightly rotated cameras, some behind or beyond the far plane."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([2.0, 1.2, 2.5], dtype=dtype)
    means[:, 2] += 6.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.5 + 0.03
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.95 + 0.03
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype).repeat(cameras, 1, 1)
    for c in range(cameras):
        a = 0.15 * c
        viewmats[c, :3, :3] = torch.tensor(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype
        )
        viewmats[c, :3, 3] = torch.tensor([0.3 * c, -0.1 * c, 0.2], dtype=dtype)
    focal = 0.9 * width
    Ks = torch.tensor([[focal, 0, width / 2 + 1.3], [0, focal, height / 2 - 0.7], [0, 0, 1]], dtype=dtype)
    return means, quats, scales, opacities, colors, viewmats, Ks.repeat(cameras, 1, 1)


@pytest.mark.parametrize("mode", ["RGB", "D", "ED", "RGB+D", "RGB+ED"])
def test_values_match_oracle(mode):
    scene = random_scene(1)
    far = 8.5  # culls the farthest Gaussians
    renders, alphas, meta = rasterize(*scene, 40, 24, near_plane=0.5, far_plane=far, render_mode=mode)
    want_r, want_a = oracle_rasterize(*scene, 40, 24, 0.5, far, 0.3, mode)
    assert renders.shape == want_r.shape and alphas.shape == want_a.shape
    assert torch.allclose(renders, want_r, atol=1e-4, rtol=0)
    assert torch.allclose(alphas, want_a, atol=1e-4, rtol=0)
    assert 0.3 < alphas.mean() < 0.99  # the scene is neither empty nor saturated
    depths, radii = meta["depths"], meta["radii"]
    assert radii.shape == (2, 60, 2) and (radii[(depths < 0.5) | (depths > far)] == 0).all()
    assert (depths > far).any() and (radii > 0).any()


def test_float32_matches_float64_oracle():
    scene64 = random_scene(2, n=80)
    scene32 = [t.float() for t in scene64]
    renders, alphas, _ = rasterize(*scene32, 40, 24, render_mode="RGB+D")
    want_r, want_a = oracle_rasterize(*scene64, 40, 24, 0.01, 1e10, 0.3, "RGB+D")
    assert torch.allclose(renders[..., :3].double(), want_r[..., :3], atol=1e-4)
    assert torch.allclose(renders[..., 3:].double(), want_r[..., 3:], atol=1e-4 * 10.0)  # depth in metres
    assert torch.allclose(alphas.double(), want_a, atol=1e-4)


def test_backgrounds_and_batch_dims():
    scene = random_scene(3, n=40)
    bg = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]], dtype=torch.float64)
    batched = [torch.stack([t, t]) for t in scene]
    renders, alphas, _ = rasterize(*batched, 40, 24, backgrounds=torch.stack([bg, bg]))
    want_r, want_a = oracle_rasterize(*scene, 40, 24, 0.01, 1e10, 0.3, "RGB")
    want_r = want_r + (1 - want_a) * bg[:, None, None, :]
    assert renders.shape == (2, 2, 24, 40, 3)
    assert torch.allclose(renders[1], want_r, atol=1e-4) and torch.allclose(renders[0], want_r, atol=1e-4)
    assert torch.allclose(alphas[0], want_a, atol=1e-4)


def test_stop_rule_with_opaque_layers():
    """Stacked near-opaque Gaussians hit the T ≤ 1e-4 stop; later ones must be left out."""
    n = 6
    dtype = torch.float64
    means = torch.tensor([[0.0, 0.0, 4.0 + i] for i in range(n)], dtype=dtype)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype)
    scales = torch.full((n, 3), 2.0, dtype=dtype)
    opacities = torch.full((n,), 0.99, dtype=dtype)
    colors = torch.eye(3, dtype=dtype).repeat(2, 1)
    viewmats = torch.eye(4, dtype=dtype)[None]
    Ks = torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]], dtype=dtype)
    renders, alphas, _ = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, 16, 16)
    want_r, want_a = oracle_rasterize(
        means, quats, scales, opacities, colors, viewmats, Ks, 16, 16, 0.01, 1e10, 0.3, "RGB"
    )
    assert torch.allclose(renders, want_r, atol=1e-6) and torch.allclose(alphas, want_a, atol=1e-6)
    # near the centre two layers leave T ≈ 1.7e-4; the third (blue) would take T below 1e-4, so it stops
    assert renders[0, 8, 8, 2] == 0 and alphas[0, 8, 8, 0] > 0.9998


@pytest.mark.parametrize("mode", ["RGB+ED", "RGB+D"])
def test_gradients_match_oracle_autograd(mode):
    scene = random_scene(4, n=30, width=32, height=20)
    bg = torch.tensor([[0.1, 0.4, 0.7], [0.9, 0.2, 0.5]], dtype=torch.float64)
    weights = torch.randn(2, 20, 32, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
        renders, alphas = fn(leaves)
        loss = (renders * weights).sum() + (alphas[..., 0] * weights[..., 0]).sum() * 0.5
        return torch.autograd.grad(loss, leaves)

    ours = grads(lambda p: rasterize(*p, *scene[5:], 32, 20, render_mode=mode, backgrounds=bg)[:2])

    def oracle(p):
        r, a = oracle_rasterize(*p, *scene[5:], 32, 20, 0.01, 1e10, 0.3, mode)
        bg_full = torch.cat([bg, torch.zeros(2, 1, dtype=bg.dtype)], dim=1)
        return r + (1 - a) * bg_full[:, None, None, :], a

    want = grads(oracle)
    for name, got, ref in zip(["means", "quats", "scales", "opacities", "colors"], ours, want):
        scale = ref.abs().max()
        assert scale > 0, name
        err = (got - ref).abs().max() / scale
        assert err < 1e-3, f"{name}: relative error {err:.2e}"


def test_chunked_and_recomputed_backward_match_oracle(monkeypatch):
    """One tile per chunk, and no cached pairs (the backward recomputes them): same values and gradients."""
    import cvd_sim.splat.composite as composite

    monkeypatch.setattr(composite, "TILES_PER_CHUNK", 1)
    monkeypatch.setattr(composite, "CACHE_PAIRS", 0)
    scene = random_scene(6, n=30, width=36, height=20)
    leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
    renders, alphas, _ = rasterize(*leaves, *scene[5:], 36, 20, render_mode="RGB+D")
    (renders.sum() + alphas.sum()).backward()
    ref_leaves = [t.clone().requires_grad_(True) for t in scene[:5]]
    want_r, want_a = oracle_rasterize(*ref_leaves, *scene[5:], 36, 20, 0.01, 1e10, 0.3, "RGB+D")
    (want_r.sum() + want_a.sum()).backward()
    assert torch.allclose(renders, want_r, atol=1e-4) and torch.allclose(alphas, want_a, atol=1e-4)
    for got, ref in zip(leaves, ref_leaves):
        assert (got.grad - ref.grad).abs().max() <= 1e-3 * ref.grad.abs().max()


def test_two_batch_dims_with_expanded_inputs_match_per_item_renders():
    """[B, T, ...] inputs (expanded views, distinct means per item) render like each item alone."""
    means, quats, scales, opacities, colors, viewmats, Ks = random_scene(7, n=50)
    g = torch.Generator().manual_seed(8)
    moved = means + torch.randn(2, 3, 1, 3, generator=g, dtype=means.dtype) * 0.2

    def expand(t):
        return t.expand(2, 3, *t.shape)

    renders, alphas, meta = rasterize(
        moved, expand(quats), expand(scales), expand(opacities), expand(colors), expand(viewmats), expand(Ks),
        40, 24, render_mode="RGB+ED",
    )  # fmt: skip
    assert renders.shape == (2, 3, 2, 24, 40, 4) and meta["radii"].shape == (2, 3, 2, 50, 2)
    for b in range(2):
        for t in range(3):
            want_r, want_a = oracle_rasterize(
                moved[b, t], quats, scales, opacities, colors, viewmats, Ks, 40, 24, 0.01, 1e10, 0.3, "RGB+ED"
            )
            assert torch.allclose(renders[b, t], want_r, atol=1e-4) and torch.allclose(
                alphas[b, t], want_a, atol=1e-4
            )
