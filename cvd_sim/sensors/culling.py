"""Conservative culls: which camera pixels / LiDAR beams can possibly see a road user's box.

The renderer casts the agent scene only on these rays. Culls over-cover by a pixel or beam; they never miss.
"""

from __future__ import annotations

import numpy as np

from cvd_sim.geometry.boxes import box_corners_3d
from cvd_sim.geometry.transforms import apply_transform, invert_pose
from cvd_sim.sensors.lidar import LidarSpec


def camera_agent_mask(
    boxes: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_world: np.ndarray,
    height: int,
    width: int,
    near: float = 0.05,
) -> np.ndarray:
    """[V, H, W] bool: pixels whose ray may hit one of the boxes [N, 7] (world).

    A box wholly in front of a camera projects inside the rectangle of its corners' projections; a box that
    straddles the camera plane can cover anything, so that camera is kept whole.
    """
    views = len(intrinsics)
    mask = np.zeros((views, height, width), bool)
    if not len(boxes):
        return mask
    corners = box_corners_3d(np.asarray(boxes, np.float64))  # [N, 8, 3]
    cam = apply_transform(
        invert_pose(np.asarray(cam_to_world, np.float64))[:, None], corners[None]
    )  # [V, N, 8, 3]
    z = cam[..., 2]
    front = (z > near).all(axis=-1)  # [V, N]
    straddle = (z > near).any(axis=-1) & ~front
    uv = np.einsum("vij,vnkj->vnki", np.asarray(intrinsics, np.float64), cam)
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = uv[..., 0] / uv[..., 2], uv[..., 1] / uv[..., 2]
    u0 = np.clip(np.floor(np.nanmin(u, -1)) - 1, 0, width).astype(int)
    u1 = np.clip(np.ceil(np.nanmax(u, -1)) + 1, 0, width).astype(int)
    v0 = np.clip(np.floor(np.nanmin(v, -1)) - 1, 0, height).astype(int)
    v1 = np.clip(np.ceil(np.nanmax(v, -1)) + 1, 0, height).astype(int)
    for view, box in zip(*np.nonzero(front)):
        mask[view, v0[view, box] : v1[view, box], u0[view, box] : u1[view, box]] = True
    mask[straddle.any(axis=1)] = True
    return mask


def lidar_agent_mask(boxes: np.ndarray, spec: LidarSpec, sensor_to_world: np.ndarray) -> np.ndarray:
    """[beams, azimuth_steps] bool: beams whose ray may hit one of the boxes [N, 7] (world).

    Azimuth: a convex footprint not containing the sensor spans the angles of its corners. Elevation: bounded
    with the nearest and farthest horizontal distance of the footprint's circumscribed circle.
    """
    mask = np.zeros((spec.beams, spec.azimuth_steps), bool)
    if not len(boxes):
        return mask
    boxes = np.asarray(boxes, np.float64)
    corners = apply_transform(invert_pose(np.asarray(sensor_to_world, np.float64)), box_corners_3d(boxes))
    centre = corners.mean(axis=1)  # [N, 3]
    r_centre = np.hypot(centre[:, 0], centre[:, 1])
    half_diag = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    if (r_centre - half_diag <= 0.0).any():  # the sensor is inside a footprint's circle: every azimuth
        mask[:] = True
        return mask
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
    for i in range(len(boxes)):
        cols = np.arange(k0[i], k1[i] + 1) % spec.azimuth_steps
        mask[np.ix_(np.flatnonzero(rows[i]), cols)] = True
    return mask
