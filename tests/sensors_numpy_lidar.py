"""Plain numpy LiDAR returns: the reference of the compiled kernel `cvd_sim.sensors.lidar_kernel`, in float32
and in the same order of operations (column by column)."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.lidar import LidarSpec, _directions_by_axis
from cvd_sim.sensors.materials import SEMANTIC_REFLECTIVITY
from cvd_sim.sensors.raycaster import Hits


def lidar_points_numpy(hits: Hits, spec: LidarSpec, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 5] float32 in the sensor frame (x, y, z, intensity 0..255, ring) and the instance id [N] of
    each point, for hits/rays [beams, azimuth_steps] from `lidar_rays` of the same spec."""
    keep = np.flatnonzero((hits.t >= spec.min_range) & (hits.t <= spec.max_range))  # a miss (inf) fails
    kept = hits.take(keep)
    r = kept.t
    out = np.empty((len(keep), 5), np.float32)
    sensor_dirs, world_dirs = _directions_by_axis(spec), rays.reshape(-1, 6).take(keep, axis=0)
    cos_inc = np.zeros(len(keep), np.float32)
    for axis in range(3):
        np.multiply(sensor_dirs[axis].take(keep), r, out=out[:, axis])
        cos_inc += kept.normal[:, axis] * world_dirs[:, 3 + axis]
    np.abs(cos_inc, out=cos_inc)
    refl = SEMANTIC_REFLECTIVITY[kept.semantic]
    out[:, 3] = np.round(
        np.clip(255.0 * refl * (0.3 + 0.7 * cos_inc) * (1.0 - 0.5 * r / spec.max_range), 0, 255)
    )
    out[:, 4] = keep // spec.azimuth_steps
    return out, kept.instance
