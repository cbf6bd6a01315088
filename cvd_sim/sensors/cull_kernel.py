"""The per-box loops of the agent culls as compiled passes (numba), in float64 in the order of their plain numpy
references (tests/sensors_numpy_culling.py); the tests find the masks equal."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def camera_box_rects(cam, edges, intrinsics, near, mask):
    """Mark in mask [V, H, W] bool the pixel rectangle each box covers in each view.

    cam [V, N, 8, 3] float64: box corners in each camera frame; edges [12, 2]: corner pairs of the box edges;
    intrinsics [V, 3, 3]; near: camera-frame depth below which points are ignored. A rectangle spans the
    projections of the corners in front (z > near) and of the points where edges cross z = near, widened by a
    pixel and clipped to the image.
    """
    views, boxes = cam.shape[0], cam.shape[1]
    height, width = mask.shape[1], mask.shape[2]
    point = np.empty(3)
    for view in range(views):
        k = intrinsics[view]
        for box in range(boxes):
            c = cam[view, box]
            u_min, v_min, u_max, v_max = np.inf, np.inf, -np.inf, -np.inf
            for p in range(8 + len(edges)):
                if p < 8:
                    if not c[p, 2] > near:
                        continue
                    point[:] = c[p]
                else:
                    a, b = c[edges[p - 8, 0]], c[edges[p - 8, 1]]
                    if (a[2] > near) == (b[2] > near):
                        continue
                    frac = (near - a[2]) / (b[2] - a[2])
                    for axis in range(2):
                        point[axis] = a[axis] + frac * (b[axis] - a[axis])
                    point[2] = near
                uvw0 = point[0] * k[0, 0] + point[1] * k[0, 1] + point[2] * k[0, 2]
                uvw1 = point[0] * k[1, 0] + point[1] * k[1, 1] + point[2] * k[1, 2]
                uvw2 = point[0] * k[2, 0] + point[1] * k[2, 1] + point[2] * k[2, 2]
                u, v = uvw0 / uvw2, uvw1 / uvw2
                u_min, u_max = min(u_min, u), max(u_max, u)
                v_min, v_max = min(v_min, v), max(v_max, v)
            u0 = min(max(np.floor(u_min) - 1, 0.0), width)
            u1 = min(max(np.ceil(u_max) + 1, 0.0), width)
            v0 = min(max(np.floor(v_min) - 1, 0.0), height)
            v1 = min(max(np.ceil(v_max) + 1, 0.0), height)
            if u1 > u0 and v1 > v0:
                mask[view, int(v0) : int(v1), int(u0) : int(u1)] = True


@numba.njit(cache=True, nogil=True)
def lidar_box_cells(corners, half_diag, elevation, margin, mask):
    """Mark in mask [beams, columns] bool the beams each box may meet: corners [N, 8, 3] float64 in the sensor
    frame, half_diag [N] half the footprint diagonals, elevation [beams] radians, margin radians.

    Azimuth: the columns spanned by the corners (a footprint not around the sensor), widened by a column on each
    side. Elevation: bounded with the nearest and farthest horizontal distance of the footprint's circumscribed
    circle, widened by margin. A footprint circle around the sensor marks every beam.
    """
    beams, columns = mask.shape
    step = 2 * np.pi / columns
    for box in range(len(corners)):
        c = corners[box]
        cx, cy = c[0, 0], c[0, 1]
        for k in range(1, 8):  # numpy's mean over the corner axis: summed in order, then divided
            cx, cy = cx + c[k, 0], cy + c[k, 1]
        cx, cy = cx / 8, cy / 8
        r_centre = np.hypot(cx, cy)
        if r_centre - half_diag[box] <= 0.0:
            mask[:] = True
            return
        r_min, r_max = r_centre - half_diag[box], r_centre + half_diag[box]
        z_lo, z_hi = c[:, 2].min(), c[:, 2].max()
        e_hi = np.arctan2(z_hi, r_min if z_hi > 0 else r_max)
        e_lo = np.arctan2(z_lo, r_min if z_lo < 0 else r_max)
        az_c = np.arctan2(cy, cx)
        rel_min, rel_max = np.inf, -np.inf
        for k in range(8):
            rel = (np.arctan2(c[k, 1], c[k, 0]) - az_c + np.pi) % (2 * np.pi) - np.pi
            rel_min, rel_max = min(rel_min, rel), max(rel_max, rel)
        first = np.int64(np.floor((az_c + rel_min) / step)) - 1
        span = np.int64(np.ceil((az_c + rel_max) / step)) + 1 - first
        for beam in range(beams):
            if not (elevation[beam] >= e_lo - margin and elevation[beam] <= e_hi + margin):
                continue
            for offset in range(min(span + 1, columns)):  # columns first .. first + span, wrapped
                mask[beam, (first + offset) % columns] = True
