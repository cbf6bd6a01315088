"""A spinning LiDAR like nuScenes' LIDAR_TOP (Velodyne HDL-32E): 32 beams, intensity from material and angle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from pyquaternion import Quaternion

from cvd_sim.sensors.lidar_kernel import lidar_returns
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
    """
    caster = hits.caster
    return lidar_returns(
        hits.t.reshape(-1), hits.face.reshape(-1), hits.normal.reshape(-1, 3), rays.reshape(-1, 6),
        _directions_by_axis(spec), caster.face_semantic, caster.face_instance, SEMANTIC_REFLECTIVITY,
        np.float32(spec.min_range), np.float32(spec.max_range), spec.azimuth_steps,
    )  # fmt: skip
