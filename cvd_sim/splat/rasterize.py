"""`rasterize`: gsplat's `rasterization` semantics; gsplat on CUDA when importable, else our torch rasterizer."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from cvd_sim.splat.composite import RasterizeToPixels
from cvd_sim.splat.composite_no_grad import composite_no_grad
from cvd_sim.splat.composite_numba import RasterizeToPixelsNumba, composite_numba
from cvd_sim.splat.projection import project_gaussians
from cvd_sim.splat.projection_numba import project_gaussians_numba
from cvd_sim.splat.tiles import plan_tiles
from cvd_sim.splat.tiles_numba import plan_tiles_numba

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
CPU_KERNELS = ("numba", "torch")


@functools.cache
def _gsplat_rasterization():
    """gsplat.rasterization, or None when gsplat is not installed (imported only for CUDA inputs)."""
    try:
        from gsplat import rasterization
    except ImportError:
        return None
    return rasterization


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    render_mode: str = "RGB",
    backgrounds: torch.Tensor | None = None,
    use_gsplat: bool | None = None,
    cpu_kernels: str = "numba",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Splat 3D Gaussians into C cameras, front to back, with gsplat 1.5 semantics (differentiable).

    means [..., N, 3] world; quats [..., N, 4] wxyz (normalised here); scales [..., N, 3] (not log);
    opacities [..., N] in [0, 1]; colors [..., N, D] or [..., C, N, D]; viewmats [..., C, 4, 4] world->camera
    (OpenCV: x right, y down, z forward); Ks [..., C, 3, 3] pixels; backgrounds [..., C, D] or None.
    render_mode: "RGB" (colours), "D" (Σ w z), "ED" (Σ w z / max(α, 1e-10)), "RGB+D", "RGB+ED".
    use_gsplat: None = gsplat when the inputs are on CUDA and gsplat imports; True forces it; False never.

    Returns renders [..., C, H, W, D (+1 depth channel last)], alphas [..., C, H, W, 1], and meta with
    radii [..., C, N, 2] int32 (0 = culled), means2d [..., C, N, 2], depths [..., C, N],
    conics [..., C, N, 3], opacities [..., C, N], width, height, backend ("gsplat" or "torch").
    The torch path reports radius = ceil(3.33·sqrt(λmax)) for both axes (gsplat may report tighter
    per-axis boxes; rendered pixels do not depend on it). It runs on the CPU: inputs on another device
    without gsplat are moved there and the results moved back (gradients flow through the moves).
    cpu_kernels: "numba" (default) runs the CPU path's tile plan and compositing as compiled kernels, and its
    projection too when no gradient is needed (grad mode off, or no input requires grad); "torch" runs their
    plain-torch references (same results to float rounding; slower, kept for tests and `cvd-sim bench splat`).
    Without gradients nothing is kept for a backward; "D" and "ED" never touch the colours.
    """
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if cpu_kernels not in CPU_KERNELS:
        raise ValueError(f"cpu_kernels must be one of {CPU_KERNELS}, got {cpu_kernels!r}")
    if use_gsplat is None:
        use_gsplat = means.is_cuda and _gsplat_rasterization() is not None
    if use_gsplat:
        gsplat_rasterization = _gsplat_rasterization()
        if gsplat_rasterization is None:
            raise RuntimeError("use_gsplat=True but gsplat is not installed (pip install 'cvd-sim[cuda]')")
        renders, alphas, meta = gsplat_rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, render_mode=render_mode,
            backgrounds=backgrounds, packed=False,
        )  # fmt: skip
        meta = dict(meta, backend="gsplat")
        return renders, alphas, meta
    device = means.device
    args = [t.cpu() for t in (means, quats, scales, opacities, colors, viewmats, Ks)]
    bg = None if backgrounds is None else backgrounds.cpu()
    renders, alphas, meta = _rasterize_torch(
        *args, width, height, near_plane, far_plane, eps2d, render_mode, bg, cpu_kernels == "numba"
    )
    if device.type != "cpu":
        renders, alphas = renders.to(device), alphas.to(device)
        meta = {k: v.to(device) if torch.is_tensor(v) else v for k, v in meta.items()}
    return renders, alphas, meta


def _rasterize_torch(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, near, far, eps2d, render_mode, bg,
    compiled,
):  # fmt: skip
    """CPU path of `rasterize` (same arguments, already on the CPU); `compiled`: the numba kernels."""
    batch = viewmats.shape[:-3]
    n_cameras, n = viewmats.shape[-3], means.shape[-2]
    inputs = (means, quats, scales, opacities, colors, viewmats, Ks)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    project = project_gaussians_numba if compiled and not needs_grad else project_gaussians
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height, near, far, eps2d)

    if render_mode in ("D", "ED"):
        feats = proj.depths.unsqueeze(-1)
    else:
        if colors.dim() == means.dim():  # [..., N, D] shared by every camera
            colors = colors.unsqueeze(-3).expand(*batch, n_cameras, n, colors.shape[-1])
        feats = colors
        if render_mode in ("RGB+D", "RGB+ED"):
            feats = torch.cat([colors, proj.depths.unsqueeze(-1)], dim=-1)

    flat_cams = math.prod(batch) * n_cameras
    means2d = proj.means2d.reshape(-1, 2)
    conics = proj.conics.reshape(-1, 3)
    opac = proj.opacities.reshape(-1)
    feats_flat = feats.reshape(-1, feats.shape[-1])
    plan = (plan_tiles_numba if compiled else plan_tiles)(
        means2d.detach(), conics.detach(), opac.detach(), proj.depths.reshape(-1).detach(),
        proj.valid.reshape(-1), n, width, height,
    )  # fmt: skip
    if compiled:
        composite = RasterizeToPixelsNumba.apply if needs_grad else composite_numba
    else:
        composite = RasterizeToPixels.apply if needs_grad else composite_no_grad
    color, alphas = composite(means2d, conics, feats_flat, opac, plan, flat_cams, width, height)
    color = color.reshape(*batch, n_cameras, height, width, -1)
    alphas = alphas.reshape(*batch, n_cameras, height, width, 1)

    if render_mode in ("ED", "RGB+ED"):
        depth = color[..., -1:] / alphas.clamp_min(1e-10)
        color = torch.cat([color[..., :-1], depth], dim=-1)
    if bg is not None:
        if render_mode in ("D", "ED"):
            bg = torch.zeros_like(color[..., 0, 0, :])
        elif render_mode in ("RGB+D", "RGB+ED"):
            bg = torch.cat([bg, torch.zeros_like(bg[..., :1])], dim=-1)
        color = color + (1.0 - alphas) * bg.unsqueeze(-2).unsqueeze(-2)
    meta = {
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": proj.opacities,
        "width": width,
        "height": height,
        "backend": "torch",
    }
    return color, alphas, meta
