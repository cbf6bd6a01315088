"""Plain numpy references of the agent culls (`cvd_sim.sensors.culling`), whose per-box loops are compiled."""

from __future__ import annotations

import numpy as np

from cvd_sim.geometry.boxes import BOX_EDGES, box_corners_3d
from cvd_sim.geometry.transforms import apply_transform, invert_pose
from cvd_sim.sensors.culling import NEAR
from cvd_sim.sensors.lidar import LidarSpec


def camera_agent_mask_numpy(
    boxes: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    near: float = NEAR,
) -> np.ndarray:
    """[V, H, W] bool: pixels whose ray may hit one of the boxes [N, 7] (world).

    The part of a box in front of the camera (z > near: the box clipped by the near plane) projects inside
    the rectangle spanned by the projections of its vertices: the box corners in front and the points where
    box edges cross the near plane. A box straddling the camera plane therefore covers the image only on the
    side it reaches round to, not the whole image.
    """
    views = len(intrinsics)
    mask = np.zeros((views, height, width), bool)
    if not len(boxes):
        return mask
    corners = box_corners_3d(np.asarray(boxes, np.float64))  # [N, 8, 3]
    cam = apply_transform(invert_pose(np.asarray(cam_to_world, np.float64))[:, None], corners[None])
    a, b = cam[..., BOX_EDGES[:, 0], :], cam[..., BOX_EDGES[:, 1], :]  # edge ends [V, N, 12, 3]
    crosses = (a[..., 2] > near) != (b[..., 2] > near)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(crosses, (near - a[..., 2]) / (b[..., 2] - a[..., 2]), 0.0)
    cut = a + frac[..., None] * (b - a)
    cut[..., 2] = near
    points = np.concatenate([cam, cut], axis=-2)  # [V, N, 20, 3]
    valid = np.concatenate([cam[..., 2] > near, crosses], axis=-1)
    points[~valid] = (0.0, 0.0, 1.0)  # placeholders, masked out below
    uvw = points @ np.asarray(intrinsics, np.float64).transpose(0, 2, 1)[:, None]
    u, v = uvw[..., 0] / uvw[..., 2], uvw[..., 1] / uvw[..., 2]
    u0 = np.clip(np.floor(np.where(valid, u, np.inf).min(-1)) - 1, 0, width)
    u1 = np.clip(np.ceil(np.where(valid, u, -np.inf).max(-1)) + 1, 0, width)
    v0 = np.clip(np.floor(np.where(valid, v, np.inf).min(-1)) - 1, 0, height)
    v1 = np.clip(np.ceil(np.where(valid, v, -np.inf).max(-1)) + 1, 0, height)
    for view, box in zip(*np.nonzero(valid.any(-1) & (u1 > u0) & (v1 > v0))):
        mask[view, int(v0[view, box]) : int(v1[view, box]), int(u0[view, box]) : int(u1[view, box])] = True
    return mask


def lidar_agent_mask_numpy(boxes: np.ndarray, spec: LidarSpec, sensor_to_world: np.ndarray) -> np.ndarray:
    """[beams, azimuth_steps] bool: beams whose ray may hit one of the boxes [N, 7] (world).

    Azimuth: a convex footprint not containing the sensor spans the angles of its corners. Elevation: bounded
    with the nearest and farthest horizontal distance of the footprint's circumscribed circle.
    """
    if not len(boxes):
        return np.zeros((spec.beams, spec.azimuth_steps), bool)
    boxes = np.asarray(boxes, np.float64)
    corners = apply_transform(invert_pose(np.asarray(sensor_to_world, np.float64)), box_corners_3d(boxes))
    centre = corners.mean(axis=1)  # [N, 3]
    r_centre = np.hypot(centre[:, 0], centre[:, 1])
    half_diag = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    if (r_centre - half_diag <= 0.0).any():  # the sensor is inside a footprint's circle: every azimuth
        return np.ones((spec.beams, spec.azimuth_steps), bool)
    r_min, r_max = r_centre - half_diag, r_centre + half_diag
    z_lo, z_hi = corners[..., 2].min(axis=1), corners[..., 2].max(axis=1)
    e_hi = np.arctan2(z_hi, np.where(z_hi > 0, r_min, r_max))
    e_lo = np.arctan2(z_lo, np.where(z_lo < 0, r_min, r_max))
    elev = np.deg2rad(np.linspace(spec.min_elevation_deg, spec.max_elevation_deg, spec.beams))
    margin = np.deg2rad(0.5)
    rows = (elev[None] >= (e_lo - margin)[:, None]) & (elev[None] <= (e_hi + margin)[:, None])  # [N, beams]
    az_c = np.arctan2(centre[:, 1], centre[:, 0])
    rel = (np.arctan2(corners[..., 1], corners[..., 0]) - az_c[:, None] + np.pi) % (2 * np.pi) - np.pi
    step = 2 * np.pi / spec.azimuth_steps
    k0 = np.floor((az_c + rel.min(axis=1)) / step).astype(int) - 1
    k1 = np.ceil((az_c + rel.max(axis=1)) / step).astype(int) + 1
    offset = (np.arange(spec.azimuth_steps)[None] - k0[:, None]) % spec.azimuth_steps
    cols = offset <= (k1 - k0)[:, None]  # [N, azimuth_steps]: columns k0..k1, wrapped
    return (rows.T.astype(np.float32) @ cols.astype(np.float32)) > 0  # any box covering both
