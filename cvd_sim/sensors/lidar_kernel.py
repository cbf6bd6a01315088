"""LiDAR returns as one compiled pass (numba): the points of a sweep's hits in the sensor frame, with intensity
and ring, in float32 in the order of their plain numpy reference (tests/sensors_numpy_lidar.py)."""

from __future__ import annotations

import numba
import numpy as np

F32 = np.float32
AMBIENT_RETURN, ANGLE_RETURN = F32(0.3), F32(0.7)  # intensity factor 0.3 + 0.7 |cos incidence|
FULL_SCALE, RANGE_FALLOFF = F32(255.0), F32(0.5)  # intensity 255 at full reflectivity; -50% at max range


@numba.njit(cache=True, nogil=True)
def lidar_returns(
    t, face, normal, rays, sensor_dirs, face_semantic, face_instance, reflectivity, min_range, max_range, columns
):  # fmt: skip
    """Points [K, 5] float32 (x, y, z sensor frame, intensity 0..255, ring) and instance ids [K] int32 of the
    rays whose hit distance lies in [min_range, max_range] (float32), in ray order.

    Per ray [N]: t float32 (inf = miss), face int64 face-table row, normal [N, 3] and rays [N, 6] float32 world,
    sensor_dirs [3, N] float32 unit directions in the sensor frame. Per face-table row: face_semantic,
    face_instance; per semantic id: reflectivity float32. columns: azimuth steps per ring (rays are ring-major).
    """
    count = 0
    for i in range(len(t)):
        count += t[i] >= min_range and t[i] <= max_range
    points = np.empty((count, 5), np.float32)
    ids = np.empty(count, np.int32)
    k = 0
    for i in range(len(t)):
        r = t[i]
        if not (r >= min_range and r <= max_range):
            continue
        f = face[i]
        cos_inc = abs(normal[i, 0] * rays[i, 3] + normal[i, 1] * rays[i, 4] + normal[i, 2] * rays[i, 5])
        gain = FULL_SCALE * reflectivity[face_semantic[f]] * (AMBIENT_RETURN + ANGLE_RETURN * cos_inc)
        intensity = gain * (F32(1.0) - RANGE_FALLOFF * r / max_range)
        for axis in range(3):
            points[k, axis] = sensor_dirs[axis, i] * r
        points[k, 3] = np.round(min(max(intensity, F32(0.0)), FULL_SCALE))
        points[k, 4] = i // columns
        ids[k] = face_instance[f]
        k += 1
    return points, ids
