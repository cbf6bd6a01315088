"""Forward-only EWA projection as a compiled CPU kernel (numba), for when no gradient is needed.

`project_gaussians` (plain torch autograd) is its reference: the same formulas pair by pair, fused into one
loop instead of dozens of tensor passes over every (camera, Gaussian) pair. The tests hold the two to float
rounding (the torch path's matmul may fuse multiply-adds).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from cvd_sim.splat.numba_threads import match_torch_threads
from cvd_sim.splat.projection import ALPHA_THRESHOLD, RADIUS_SIGMAS, Projected

# near, far, eps2d, width, height (per call), then the fixed numbers of the formulas
_FIXED_CONSTS = (0.0, 1.0, 0.5, 0.3, RADIUS_SIGMAS, ALPHA_THRESHOLD, 0.1, 0.01)


@numba.njit(parallel=True, cache=True, nogil=True)
def _covariance_factors(quats, scales, consts, factors, max_scale):
    """quats [G, 4] wxyz (any norm), scales [G, 3] -> factors [G, 9] = M = R S row-major, max_scale [G].

    consts = (1, 2, 1e-12) in the float type, so that all arithmetic stays in it."""
    one, two, tiny = consts[0], consts[1], consts[2]
    for i in numba.prange(quats.shape[0]):
        w, x, y, z = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        norm = max(np.sqrt(w * w + x * x + y * y + z * z), tiny)
        w, x, y, z = w / norm, x / norm, y / norm, z / norm
        s0, s1, s2 = scales[i, 0], scales[i, 1], scales[i, 2]
        factors[i, 0] = (one - two * (y * y + z * z)) * s0
        factors[i, 1] = two * (x * y - w * z) * s1
        factors[i, 2] = two * (x * z + w * y) * s2
        factors[i, 3] = two * (x * y + w * z) * s0
        factors[i, 4] = (one - two * (x * x + z * z)) * s1
        factors[i, 5] = two * (y * z - w * x) * s2
        factors[i, 6] = two * (x * z - w * y) * s0
        factors[i, 7] = two * (y * z + w * x) * s1
        factors[i, 8] = (one - two * (x * x + y * y)) * s2
        max_scale[i] = max(s0, max(s1, s2))


@numba.njit(parallel=True, cache=True, nogil=True)
def _project_pairs(
    means, factors, max_scale, opacities, viewmats, ks, consts, means2d, conics, depths, radius, valid
):
    """Every (batch, camera, Gaussian) pair: means [B, N, 3], factors [B, N, 9], max_scale [B, N],
    opacities [B, N], viewmats [B, C, 4, 4], ks [B, C, 3, 3]; consts = (near, far, eps2d, width, height, *_FIXED_CONSTS) in the float type ->
    means2d [B, C, N, 2], conics [B, C, N, 3], depths [B, C, N], radius [B, C, N] int32, valid [B, C, N]."""
    near, far, eps2d, width, height = consts[0], consts[1], consts[2], consts[3], consts[4]
    zero, one, half, edge, k_sigma = consts[5], consts[6], consts[7], consts[8], consts[9]
    min_alpha, bound_pad, min_disc = consts[10], consts[11], consts[12]
    n_batch, n_cams, n = viewmats.shape[0], viewmats.shape[1], means.shape[1]
    for bc in numba.prange(n_batch * n_cams):
        b, c = bc // n_cams, bc % n_cams
        r = viewmats[b, c]
        fx, fy, cx, cy = ks[b, c, 0, 0], ks[b, c, 1, 1], ks[b, c, 0, 2], ks[b, c, 1, 2]
        tan_fovx, tan_fovy = half * width / fx, half * height / fy
        u_lo, u_hi = -(cx / fx + edge * tan_fovx), (width - cx) / fx + edge * tan_fovx
        v_lo, v_hi = -(cy / fy + edge * tan_fovy), (height - cy) / fy + edge * tan_fovy
        for i in range(n):
            mx, my, mz = means[b, i, 0], means[b, i, 1], means[b, i, 2]
            tx = r[0, 0] * mx + r[0, 1] * my + r[0, 2] * mz + r[0, 3]
            ty = r[1, 0] * mx + r[1, 1] * my + r[1, 2] * mz + r[1, 3]
            tz = r[2, 0] * mx + r[2, 1] * my + r[2, 2] * mz + r[2, 3]
            in_depth = tz >= near and tz <= far
            z = tz if in_depth else one
            px, py = fx * tx / z + cx, fy * ty / z + cy
            means2d[b, c, i, 0], means2d[b, c, i, 1] = px, py
            depths[b, c, i] = tz
            conics[b, c, i, 0], conics[b, c, i, 1], conics[b, c, i, 2] = zero, zero, zero
            radius[b, c, i], valid[b, c, i] = 0, False
            if not in_depth:
                continue
            u = min(max(tx / z, u_lo), u_hi)
            v = min(max(ty / z, v_lo), v_hi)
            jac_f2 = (fx * fx * (one + u * u) + fy * fy * (one + v * v)) / (z * z)
            s = max_scale[b, i]
            bound = k_sigma * np.sqrt(jac_f2 * s * s + eps2d + bound_pad) + one
            if not (px + bound > zero and px - bound < width and py + bound > zero and py - bound < height):
                continue
            fx_z, fxu_z, fy_z, fyv_z = fx / z, fx * u / z, fy / z, fy * v / z
            jw00, jw01, jw02 = (
                fx_z * r[0, 0] - fxu_z * r[2, 0],
                fx_z * r[0, 1] - fxu_z * r[2, 1],
                fx_z * r[0, 2] - fxu_z * r[2, 2],
            )
            jw10, jw11, jw12 = (
                fy_z * r[1, 0] - fyv_z * r[2, 0],
                fy_z * r[1, 1] - fyv_z * r[2, 1],
                fy_z * r[1, 2] - fyv_z * r[2, 2],
            )
            m = factors[b, i]
            u00 = jw00 * m[0] + jw01 * m[3] + jw02 * m[6]
            u01 = jw00 * m[1] + jw01 * m[4] + jw02 * m[7]
            u02 = jw00 * m[2] + jw01 * m[5] + jw02 * m[8]
            u10 = jw10 * m[0] + jw11 * m[3] + jw12 * m[6]
            u11 = jw10 * m[1] + jw11 * m[4] + jw12 * m[7]
            u12 = jw10 * m[2] + jw11 * m[5] + jw12 * m[8]
            c00 = u00 * u00 + u01 * u01 + u02 * u02 + eps2d
            c11 = u10 * u10 + u11 * u11 + u12 * u12 + eps2d
            c01 = u00 * u10 + u01 * u11 + u02 * u12
            det = c00 * c11 - c01 * c01
            det_ok = det > zero
            det_safe = det if det_ok else one
            conics[b, c, i, 0], conics[b, c, i, 1], conics[b, c, i, 2] = (
                c11 / det_safe,
                -c01 / det_safe,
                c00 / det_safe,
            )
            half_trace = half * (c00 + c11)
            lam_max = half_trace + np.sqrt(max(half_trace * half_trace - det, min_disc))
            rad = np.ceil(k_sigma * np.sqrt(lam_max))
            on_image = px + rad > zero and px - rad < width and py + rad > zero and py - rad < height
            if det_ok and opacities[b, i] >= min_alpha and on_image:
                radius[b, c, i], valid[b, c, i] = int(rad), True


@torch.no_grad()
def project_gaussians_numba(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
) -> Projected:
    """`project_gaussians` without autograd (same arguments and result); CPU tensors, float32 or float64."""
    batch, n_cams, n = viewmats.shape[:-3], viewmats.shape[-3], means.shape[-2]
    dtype = means.dtype

    def flat(t: torch.Tensor, tail: tuple[int, ...]) -> np.ndarray:
        return t.to(dtype).expand(*batch, *tail).reshape(-1, *tail).contiguous().numpy()

    means_np, quats_np, scales_np = flat(means, (n, 3)), flat(quats, (n, 4)), flat(scales, (n, 3))
    opac_np = flat(opacities, (n,))
    view_np, ks_np = flat(viewmats, (n_cams, 4, 4)), flat(Ks, (n_cams, 3, 3))
    b = means_np.shape[0]
    factors = np.empty((b * n, 9), dtype=means_np.dtype)
    max_scale = np.empty(b * n, dtype=means_np.dtype)
    match_torch_threads()
    factor_consts = np.array([1.0, 2.0, 1e-12], dtype=means_np.dtype)
    _covariance_factors(quats_np.reshape(-1, 4), scales_np.reshape(-1, 3), factor_consts, factors, max_scale)
    consts = np.array([near_plane, far_plane, eps2d, width, height, *_FIXED_CONSTS], dtype=means_np.dtype)
    means2d = np.empty((b, n_cams, n, 2), dtype=means_np.dtype)
    conics = np.empty((b, n_cams, n, 3), dtype=means_np.dtype)
    depths = np.empty((b, n_cams, n), dtype=means_np.dtype)
    radius = np.empty((b, n_cams, n), dtype=np.int32)
    valid = np.empty((b, n_cams, n), dtype=np.bool_)
    _project_pairs(
        means_np, factors.reshape(b, n, 9), max_scale.reshape(b, n), opac_np, view_np, ks_np, consts,
        means2d, conics, depths, radius, valid,
    )  # fmt: skip
    shape = (*batch, n_cams, n)
    radius_t = torch.from_numpy(radius).view(shape)
    return Projected(
        means2d=torch.from_numpy(means2d).view(*shape, 2),
        conics=torch.from_numpy(conics).view(*shape, 3),
        depths=torch.from_numpy(depths).view(shape),
        opacities=opacities.to(dtype).unsqueeze(-2).expand(shape),
        radii=torch.stack([radius_t, radius_t], dim=-1),
        valid=torch.from_numpy(valid).view(shape),
    )
