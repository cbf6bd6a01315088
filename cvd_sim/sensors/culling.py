"""Conservative culls: which camera pixels / LiDAR beams can possibly see a road user's box.

The renderer casts the agent scene only on these rays. Culls over-cover by a pixel or beam; they never miss.
The per-box loops are compiled (`cull_kernel`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from cvd_sim.geometry.boxes import BOX_EDGES, box_corners_3d
from cvd_sim.geometry.transforms import apply_transform, invert_pose
from cvd_sim.sensors.cull_kernel import camera_box_rects, lidar_box_cells
from cvd_sim.sensors.lidar import LidarSpec

# Camera-frame depth (metres) below which the camera cull ignores hits: far under float32 ray precision.
NEAR = 1e-6


def camera_agent_mask(
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
    camera_box_rects(cam, BOX_EDGES, np.ascontiguousarray(intrinsics, np.float64), float(near), mask)
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
    half_diag = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    lidar_box_cells(corners, half_diag, _beam_elevations(spec), np.deg2rad(0.5), mask)
    return mask


@cache
def _beam_elevations(spec: LidarSpec) -> np.ndarray:
    """Beam elevations [beams] float64 radians, computed once per spec."""
    elevation = np.deg2rad(np.linspace(spec.min_elevation_deg, spec.max_elevation_deg, spec.beams))
    elevation.flags.writeable = False
    return elevation
