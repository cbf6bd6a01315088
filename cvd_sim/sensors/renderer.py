"""`RaycastRenderer`: ground-truth cameras (RGB, z-depth, semantic, instance, sky) and LiDAR for one map."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cvd_sim.sensors.agent_meshes import agent_meshes
from cvd_sim.sensors.culling import camera_agent_mask, lidar_agent_mask
from cvd_sim.sensors.lidar import LidarSpec, lidar_points, lidar_rays
from cvd_sim.sensors.lighting import Lighting, lighting_from_text
from cvd_sim.sensors.map_geometry import MapGeometry
from cvd_sim.sensors.materials import SKY_ID
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.raycaster import RayCaster
from cvd_sim.sensors.shading import face_radiance, shade
from cvd_sim.sensors.static_world import build_static_world


@dataclass
class CameraFrame:
    """V camera images: rgb [V, H, W, 3] uint8; depth [V, H, W] float32 z-depth metres (0 = sky);
    semantic [V, H, W] uint8 (materials.SEMANTIC_NAMES); instance [V, H, W] int32 (-1 = none);
    sky_mask [V, H, W] bool."""

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    sky_mask: np.ndarray


@lru_cache(maxsize=16)
def _camera_directions(k_bytes: bytes, views: int, height: int, width: int) -> np.ndarray:
    """Camera-frame directions [V, H*W, 3] float32 with z = 1 through the pixel centres (u + 0.5, v + 0.5)."""
    k_inv = np.linalg.inv(np.frombuffer(k_bytes, np.float64).reshape(views, 3, 3))
    v, u = np.mgrid[0:height, 0:width] + 0.5
    pix = np.stack([u.ravel(), v.ravel(), np.ones(height * width)], axis=1)
    dirs = np.einsum("vij,nj->vni", k_inv, pix)
    dirs /= dirs[..., 2:3]
    out = dirs.astype(np.float32)
    out.flags.writeable = False
    return out


def camera_rays_np(intrinsics: np.ndarray, cam_to_world: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rays [V, H, W, 6] float32 (origin, direction) world: pixel centres at +0.5, camera-frame z = 1, so the hit
    distance along these rays is z-depth (the convention of `cvd_sim.geometry.rays.camera_rays`).

    intrinsics [V, 3, 3]; cam_to_world [V, 4, 4] (OpenCV camera).
    """
    k = np.ascontiguousarray(intrinsics, np.float64)
    dirs = _camera_directions(k.tobytes(), len(k), int(height), int(width))
    pose = np.asarray(cam_to_world, np.float64)
    rays = np.empty((len(k), height * width, 6), np.float32)
    rays[..., :3] = pose[:, None, :3, 3]
    rot = pose[:, None, :3, :3].astype(np.float32)  # [V, 1, 3, 3]; dirs have z = 1 in the camera frame
    rays[..., 3:] = dirs[..., 0:1] * rot[..., 0] + dirs[..., 1:2] * rot[..., 1] + rot[..., 2]
    return rays.reshape(len(k), height, width, 6)


class RaycastRenderer:
    """Ray-cast sensors for one map: static world built once, agents replaced per frame with `set_agents`."""

    def __init__(
        self,
        map_geometry: MapGeometry | None = None,
        *,
        static: MeshSet | None = None,
        text: str = "",
        seed: int = 0,
        nthreads: int = 0,
    ):
        if static is None:
            if map_geometry is None:
                raise ValueError("RaycastRenderer needs map_geometry or a prebuilt static MeshSet")
            static = build_static_world(map_geometry, seed)
        self.seed = seed
        self.lighting: Lighting = lighting_from_text(text)
        self.caster = RayCaster(static, nthreads=nthreads)
        self._static_radiance = face_radiance(static, self.lighting)
        self.set_agents(np.zeros((0, 7)), np.zeros(0, int), np.zeros(0, int))

    def set_agents(self, boxes: np.ndarray, categories: np.ndarray, instance_ids: np.ndarray) -> None:
        """Road users of this frame: boxes [N, 7] world, categories [N], instance ids [N] (>= 0)."""
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
        agents = agent_meshes(self.boxes, categories, instance_ids, self.seed)
        self.caster.set_agents(agents)
        miss = np.zeros((1, 2, 3), np.float32)
        self._radiance = np.concatenate([self._static_radiance, face_radiance(agents, self.lighting), miss])

    def render_cameras(
        self, intrinsics: np.ndarray, cam_to_world: np.ndarray, height: int, width: int
    ) -> CameraFrame:
        """intrinsics [V, 3, 3] pixels for (height, width); cam_to_world [V, 4, 4] -> CameraFrame."""
        rays = camera_rays_np(intrinsics, cam_to_world, height, width)
        hits = self.caster.cast(rays, camera_agent_mask(self.boxes, intrinsics, cam_to_world, height, width))
        sky = ~hits.hit
        return CameraFrame(
            rgb=shade(hits, rays, self.lighting, self._radiance),
            depth=np.where(sky, 0.0, hits.t).astype(np.float32),
            semantic=np.where(sky, SKY_ID, hits.semantic).astype(np.uint8),
            instance=hits.instance,
            sky_mask=sky,
        )

    def render_lidar(
        self, sensor_to_world: np.ndarray, spec: LidarSpec | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sweep from a sensor pose [4, 4] -> points [N, 5] (x, y, z sensor frame, intensity, ring)
        and the instance id [N] of each point (-1 = static)."""
        spec = spec or LidarSpec()
        rays = lidar_rays(spec, sensor_to_world)
        hits = self.caster.cast(rays, lidar_agent_mask(self.boxes, spec, sensor_to_world))
        return lidar_points(hits, spec, rays)
