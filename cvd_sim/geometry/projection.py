"""Pinhole projection of points and of segments with near-plane clipping (numpy, vectorised).

Segments are clipped against the plane z = near in camera space *before* the perspective divide, so a
segment that passes behind the camera is cut at the near plane instead of wrapping around through infinity.
"""

from __future__ import annotations

import numpy as np

from cvd_sim.geometry.transforms import apply_transform


def project_points(
    points_cam: np.ndarray, intrinsics: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points [..., N, 3] with intrinsics [..., 3, 3] -> pixels [..., N, 2], z-depth [..., N].

    Points with z <= eps get non-finite pixel coordinates; check `depth > near` before using them.
    """
    z = points_cam[..., 2]
    proj = points_cam @ np.swapaxes(intrinsics, -1, -2)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = proj[..., :2] / np.where(z > eps, z, np.nan)[..., None]
    return uv, z


def clip_segments_near(
    start: np.ndarray, end: np.ndarray, near: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-frame segments [..., 3] to the half-space z >= near.

    Returns (start', end', keep [...] bool): `keep` is False where both ends lie behind the
    plane; otherwise the end(s) behind it are moved onto it along the segment.
    """
    z0, z1 = start[..., 2], end[..., 2]
    keep = (z0 >= near) | (z1 >= near)
    dz = z1 - z0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(dz) > 0, (near - z0) / dz, 0.0)
    hit = start + t[..., None] * (end - start)
    start_c = np.where((z0 < near)[..., None], hit, start)
    end_c = np.where((z1 < near)[..., None], hit, end)
    return start_c, end_c, keep


def project_segments(
    start_ego: np.ndarray,
    end_ego: np.ndarray,
    ego_to_cam: np.ndarray,
    intrinsics: np.ndarray,
    near: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project S ego-frame segments into V cameras with near-plane clipping.

    start_ego, end_ego [S, 3]; ego_to_cam [V, 4, 4]; intrinsics [V, 3, 3]
    -> (uv_start [V, S, 2], uv_end [V, S, 2], depth_mid [V, S], keep [V, S] bool).
    """
    s = apply_transform(ego_to_cam, start_ego[None])
    e = apply_transform(ego_to_cam, end_ego[None])
    s, e, keep = clip_segments_near(s, e, near)
    uv_s, z_s = project_points(s, intrinsics)
    uv_e, z_e = project_points(e, intrinsics)
    return uv_s, uv_e, 0.5 * (z_s + z_e), keep
