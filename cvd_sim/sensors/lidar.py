"""A spinning LiDAR like nuScenes' LIDAR_TOP (Velodyne HDL-32E): 32 beams, intensity from material and angle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from pyquaternion import Quaternion

from cvd_sim.sensors.materials import SEMANTIC_REFLECTIVITY
from cvd_sim.sensors.raycaster import Hits

# nuScenes LIDAR_TOP mounting (ego frame): on the roof, x right, y forward, z up.
LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
LIDAR_ROTATION = (np.cos(-np.pi / 4), 0.0, 0.0, np.sin(-np.pi / 4))  # w, x, y, z: yaw -90 degrees


def lidar_to_ego() -> np.ndarray:
    """[4, 4] LIDAR_TOP -> ego."""
    pose = np.eye(4)
    pose[:3, :3] = Quaternion(LIDAR_ROTATION).rotation_matrix
    pose[:3, 3] = LIDAR_TRANSLATION
    return pose


@dataclass(frozen=True)
class LidarSpec:
    beams: int = 32
    min_elevation_deg: float = -30.67
    max_elevation_deg: float = 10.67
    azimuth_steps: int = 1084
    max_range: float = 70.0
    min_range: float = 1.0


@cache
def _directions(spec: LidarSpec) -> np.ndarray:
    """Homogeneous unit beam directions [beams, azimuth_steps, 4] float32 (x, y, z, 1) in the sensor frame,
    computed once per spec."""
    elev = np.deg2rad(np.linspace(spec.min_elevation_deg, spec.max_elevation_deg, spec.beams))[:, None]
    azim = np.linspace(0.0, 2 * np.pi, spec.azimuth_steps, endpoint=False)[None, :]
    dirs = np.stack(
        np.broadcast_arrays(np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev), 1.0), -1
    )
    dirs = dirs.astype(np.float32)
    dirs.flags.writeable = False
    return dirs


@cache
def _directions_by_axis(spec: LidarSpec) -> np.ndarray:
    """Unit beam directions as rows [3, beams * azimuth_steps] float32 (x, y, z), computed once per spec."""
    dirs = np.ascontiguousarray(_directions(spec).reshape(-1, 4)[:, :3].T)
    dirs.flags.writeable = False
    return dirs


def lidar_rays(spec: LidarSpec, sensor_to_world: np.ndarray) -> np.ndarray:
    """Rays [beams, azimuth_steps, 6] float32 in the world (unit directions, so t = range in metres)."""
    to_rays = np.zeros((4, 6), np.float32)  # (x, y, z, 1) @ to_rays = (origin, R @ (x, y, z))
    to_rays[:3, 3:] = sensor_to_world[:3, :3].T
    to_rays[3, :3] = sensor_to_world[:3, 3]
    return _directions(spec) @ to_rays


def lidar_points(hits: Hits, spec: LidarSpec, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 5] float32 in the sensor frame: x, y, z, intensity (0..255), ring index (nuScenes .pcd.bin),
    and the instance id [N] each point hit (-1 = static).

    hits/rays from `lidar_rays` of the same spec; misses and returns outside [min_range, max_range] dropped.
    Computed column by column: numpy is several times slower on [N, 3] rows than on [N] columns.
    """
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
