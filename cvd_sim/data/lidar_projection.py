"""Sparse depth images from LiDAR points: z-buffered projection into a pinhole camera."""

from __future__ import annotations

import numpy as np


def project_depth(
    points_cam: np.ndarray, intrinsics: np.ndarray, height: int, width: int, min_depth: float = 0.5
):
    """points_cam [N, 3] in the OpenCV camera frame -> depth [H, W] float32 (nearest z per pixel, 0 = none)."""
    z = points_cam[:, 2]
    front = z > min_depth
    p, z = points_cam[front], z[front]
    uv = p @ intrinsics.T
    u = np.floor(uv[:, 0] / uv[:, 2]).astype(np.int64)
    v = np.floor(uv[:, 1] / uv[:, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.full(height * width, np.inf, np.float32)
    np.minimum.at(depth, v * width + u, z.astype(np.float32))
    depth[~np.isfinite(depth)] = 0.0
    return depth.reshape(height, width)
