"""nuScenes visibility level of an annotation: visible instance pixels over the box's projected area."""

from __future__ import annotations

import numpy as np
from shapely.geometry import MultiPoint, box

from cvd_sim.geometry.transforms import apply_transform, invert_pose


def projected_area(
    corners_world: np.ndarray, intrinsics, cam_to_world, height: int, width: int
) -> np.ndarray:
    """Pixels [N] covered by each box's projection, summed over V cameras (boxes crossing a camera plane are
    clipped to the corners in front). corners_world [N, 8, 3]; intrinsics [V, 3, 3]; cam_to_world [V, 4, 4]."""
    area = np.zeros(len(corners_world))
    image = box(0, 0, width, height)
    for k, world_to_cam in zip(intrinsics, invert_pose(np.asarray(cam_to_world, np.float64))):
        cam = apply_transform(world_to_cam, corners_world)
        for i, pts in enumerate(cam):
            front = pts[pts[:, 2] > 0.1]
            if len(front) < 3:
                continue
            uv = front @ k.T
            uv = uv[:, :2] / uv[:, 2:3]
            area[i] += MultiPoint([tuple(p) for p in uv]).convex_hull.intersection(image).area
    return area


def visibility_level(visible_pixels: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Level "1".."4" [N] (0-40, 40-60, 60-80, 80-100 percent visible)."""
    ratio = np.where(area > 0, visible_pixels / np.maximum(area, 1e-9), 0.0)
    return np.array([str(1 + int(np.searchsorted([0.4, 0.6, 0.8], r, side="right"))) for r in ratio])
