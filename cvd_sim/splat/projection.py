"""EWA projection of 3D Gaussians to 2D image-plane Gaussians with gsplat 1.5 semantics (plain torch autograd)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ALPHA_THRESHOLD = 1.0 / 255.0
RADIUS_SIGMAS = 3.33


@dataclass
class Projected:
    """2D Gaussians per camera; leading shape `[..., C, N]`.

    means2d [..., C, N, 2] pixels; conics [..., C, N, 3] = inverse 2D covariance (a, b, c);
    depths [..., C, N] camera z; opacities [..., C, N]; radii [..., C, N, 2] int32 (0 = culled);
    valid [..., C, N] bool = not culled.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    opacities: torch.Tensor
    radii: torch.Tensor
    valid: torch.Tensor


def quat_scale_to_matrix(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """quats [..., 4] wxyz (any norm), scales [..., 3] -> M = R S [..., 3, 3], so that Σ = M Mᵀ."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).unflatten(-1, (3, 3))
    return rot * scales.unsqueeze(-2)


def project_gaussians(
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
    """Project world Gaussians into every camera.

    means [..., N, 3], quats [..., N, 4] wxyz, scales [..., N, 3], opacities [..., N],
    viewmats [..., C, 4, 4] world->camera (OpenCV), Ks [..., C, 3, 3] pixels.
    Cov2D = J W Σ Wᵀ Jᵀ + eps2d·I with J evaluated at x/z, y/z clamped to the image edges ± 0.3·tan(fov/2);
    culled (radius 0): z < near or z > far, det <= 0, opacity < 1/255, or the box of radius
    ceil(3.33·sqrt(λmax)) entirely off-image.
    """
    n_cams, n = viewmats.shape[-3], means.shape[-2]
    rot_v = viewmats[..., :3, :3]  # [..., C, 3, 3]
    # camera coordinates as [..., C, 3, N]: contiguous rows, and a faster matmul than [..., C, N, 3]
    means_c = rot_v @ means.unsqueeze(-3).transpose(-1, -2) + viewmats[..., :3, 3, None]
    tx, ty, tz = means_c.unbind(-2)
    in_depth = (tz >= near_plane) & (tz <= far_plane)
    z = torch.where(in_depth, tz, torch.ones_like(tz))  # keeps culled entries finite (and their grads zero)
    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]
    mx, my = fx * tx / z + cx, fy * ty / z + cy
    means2d = torch.stack([mx, my], dim=-1)
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    u = torch.clamp(tx / z, min=-(cx / fx + 0.3 * tan_fovx), max=(width - cx) / fx + 0.3 * tan_fovx)
    v = torch.clamp(ty / z, min=-(cy / fy + 0.3 * tan_fovy), max=(height - cy) / fy + 0.3 * tan_fovy)

    # Covariances only for (camera, Gaussian) pairs that can reach the image: λmax(Cov2D) ≤ ‖J‖²_F·max(s)²
    with torch.no_grad():
        jac_f2 = (fx * fx * (1 + u * u) + fy * fy * (1 + v * v)) / (z * z)
        bound = RADIUS_SIGMAS * torch.sqrt(jac_f2 * scales.amax(-1).unsqueeze(-2) ** 2 + eps2d + 0.1) + 1
        reach = in_depth & (mx + bound > 0) & (mx - bound < width) & (my + bound > 0) & (my - bound < height)
        pair = torch.nonzero(reach.reshape(-1)).squeeze(1)
        gauss = pair // (n_cams * n) * n + pair % n  # flat index into [..., N]
        cam = pair // n  # flat index into [..., C]
    # per-pair values by 1D gathers (row gathers of [P, 3, 3] are several times slower on the CPU)
    zs, us, vs = (t.reshape(-1).index_select(0, pair) for t in (z, u, v))
    fxs, fys = (f.reshape(-1).index_select(0, cam) for f in (fx, fy))
    rot = rot_v.reshape(-1, 9)
    rows = [[rot[:, 3 * i + j].index_select(0, cam) for j in range(3)] for i in range(3)]  # R[i][j] [P]
    # rows of J·W, with J = [[fx/z, 0, -fx·u/z], [0, fy/z, -fy·v/z]] (u, v frustum-clamped)
    fx_z, fxu_z, fy_z, fyv_z = fxs / zs, fxs * us / zs, fys / zs, fys * vs / zs
    jw0 = [fx_z * rows[0][j] - fxu_z * rows[2][j] for j in range(3)]
    jw1 = [fy_z * rows[1][j] - fyv_z * rows[2][j] for j in range(3)]
    # U = J W M with M = R S, so Cov2D = U Uᵀ
    mat = quat_scale_to_matrix(quats, scales).reshape(-1, 9)
    m = [[mat[:, 3 * j + k].index_select(0, gauss) for k in range(3)] for j in range(3)]  # M[j][k] [P]
    u0 = [jw0[0] * m[0][k] + jw0[1] * m[1][k] + jw0[2] * m[2][k] for k in range(3)]
    u1 = [jw1[0] * m[0][k] + jw1[1] * m[1][k] + jw1[2] * m[2][k] for k in range(3)]
    c00 = u0[0] * u0[0] + u0[1] * u0[1] + u0[2] * u0[2] + eps2d
    c11 = u1[0] * u1[0] + u1[1] * u1[1] + u1[2] * u1[2] + eps2d
    c01 = u0[0] * u1[0] + u0[1] * u1[1] + u0[2] * u1[2]
    det = c00 * c11 - c01 * c01
    det_ok = det > 0
    det_safe = torch.where(det_ok, det, torch.ones_like(det))
    conic_pairs = torch.stack([c11 / det_safe, -c01 / det_safe, c00 / det_safe], dim=-1)
    conics = conic_pairs.new_zeros(tz.numel(), 3).index_copy(0, pair, conic_pairs).view(*tz.shape, 3)

    opac = opacities.unsqueeze(-2).expand_as(tz)
    with torch.no_grad():
        half_trace = 0.5 * (c00 + c11)
        lam_max = half_trace + torch.sqrt(torch.clamp(half_trace * half_trace - det, min=0.01))
        radius_pairs = torch.ceil(RADIUS_SIGMAS * torch.sqrt(lam_max))
        radius = torch.zeros_like(tz).view(-1).index_copy(0, pair, radius_pairs).view_as(tz)
        ok = torch.zeros(tz.numel(), dtype=torch.bool).index_copy(0, pair, det_ok).view_as(tz)
        on_image = (mx + radius > 0) & (mx - radius < width) & (my + radius > 0) & (my - radius < height)
        valid = reach & ok & (opac >= ALPHA_THRESHOLD) & on_image
        radius = torch.where(valid, radius, torch.zeros_like(radius)).to(torch.int32)
        radii = torch.stack([radius, radius], dim=-1)
    return Projected(means2d, conics, tz, opac, radii, valid)
