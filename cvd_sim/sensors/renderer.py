"""`RaycastRenderer`: ground-truth cameras (RGB, z-depth, semantic, instance, sky) and LiDAR for one map."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cvd_sim.sensors.agent_meshes import agent_meshes
from cvd_sim.sensors.culling import camera_agent_mask, lidar_agent_mask
from cvd_sim.sensors.label_kernel import pixel_labels
from cvd_sim.sensors.lidar import LidarSpec, lidar_points, lidar_rays
from cvd_sim.sensors.lighting import Lighting, lighting_from_text
from cvd_sim.sensors.map_geometry import MapGeometry
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
    """Homogeneous camera-frame directions [V, H*W, 4] float32 (x, y, 1, 1) through the pixel centres
    (u + 0.5, v + 0.5), z = 1."""
    k_inv = np.linalg.inv(np.frombuffer(k_bytes, np.float64).reshape(views, 3, 3))
    v, u = np.mgrid[0:height, 0:width] + 0.5
    pix = np.stack([u.ravel(), v.ravel(), np.ones(height * width)], axis=1)
    dirs = np.einsum("vij,nj->vni", k_inv, pix)
    dirs /= dirs[..., 2:3]
    out = np.concatenate([dirs, np.ones_like(dirs[..., :1])], axis=-1).astype(np.float32)
    out.flags.writeable = False
    return out


def camera_rays_np(intrinsics: np.ndarray, cam_to_world: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rays [V, H, W, 6] float32 (origin, direction) world: pixel centres at +0.5, camera-frame z = 1, so the hit
    distance along these rays is z-depth (the convention of `cvd_sim.geometry.rays.camera_rays`).

    intrinsics [V, 3, 3]; cam_to_world [V, 4, 4] (OpenCV camera).
    """
    k = np.ascontiguousarray(intrinsics, np.float64)
    dirs = _camera_directions(k.tobytes(), len(k), int(height), int(width))
    pose = np.asarray(cam_to_world, np.float64).reshape(len(k), 4, 4)
    to_rays = np.zeros((len(k), 4, 6), np.float32)  # (x, y, 1, 1) @ to_rays = (origin, R @ (x, y, 1))
    to_rays[:, :3, 3:] = pose[:, :3, :3].transpose(0, 2, 1)
    to_rays[:, 3, :3] = pose[:, :3, 3]
    return np.matmul(dirs, to_rays).reshape(len(k), height, width, 6)


class RaycastRenderer:
    """Ray-cast sensors for one map: static world built once, agents replaced per frame with `set_agents`.

    nthreads: threads for the open3d casts and the shading (0 = all cores; see `parallel.thread_count`).
    """

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
        self.nthreads = nthreads
        self.caster = RayCaster(static, nthreads=nthreads)
        self._static_radiance = face_radiance(static, self.lighting)
        self._radiance_rows = np.zeros((0, 2, 3), np.float32)  # static rows, agent rows, one zero miss row
        self.set_agents(np.zeros((0, 7)), np.zeros(0, int), np.zeros(0, int))

    def set_agents(self, boxes: np.ndarray, categories: np.ndarray, instance_ids: np.ndarray) -> None:
        """Road users of this frame: boxes [N, 7] world, categories [N], instance ids [N] (>= 0)."""
        self.boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
        agents = agent_meshes(self.boxes, categories, instance_ids, self.seed)
        self.caster.set_agents(agents)
        fs, fa = len(self._static_radiance), agents.num_faces
        if len(self._radiance_rows) < fs + fa + 1:  # grow the table, keep static rows
            self._radiance_rows = np.zeros((fs + max(2 * fa, 4096) + 1, 2, 3), np.float32)
            self._radiance_rows[:fs] = self._static_radiance
        self._radiance_rows[fs : fs + fa] = face_radiance(agents, self.lighting)
        self._radiance_rows[fs + fa] = 0.0
        self._radiance = self._radiance_rows[: fs + fa + 1]

    def render_cameras(
        self, intrinsics: np.ndarray, cam_to_world: np.ndarray, height: int, width: int
    ) -> CameraFrame:
        """intrinsics [V, 3, 3] pixels for (height, width); cam_to_world [V, 4, 4] -> CameraFrame."""
        rays = camera_rays_np(intrinsics, cam_to_world, height, width)
        hits = self.caster.cast(rays, camera_agent_mask(self.boxes, intrinsics, cam_to_world, height, width))
        caster, shape = self.caster, hits.t.shape
        labels = pixel_labels(
            hits.t.reshape(-1), hits.face.reshape(-1), caster.face_semantic, caster.face_instance
        )
        depth, semantic, instance, sky = (label.reshape(shape) for label in labels)
        rgb = shade(hits, rays, self.lighting, self._radiance, self.nthreads)
        return CameraFrame(rgb, depth, semantic, instance, sky)  # the miss row of the face table is sky

    def render_lidar(
        self, sensor_to_world: np.ndarray, spec: LidarSpec | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sweep from a sensor pose [4, 4] -> points [N, 5] (x, y, z sensor frame, intensity, ring)
        and the instance id [N] of each point (-1 = static)."""
        spec = spec or LidarSpec()
        rays = lidar_rays(spec, sensor_to_world)
        hits = self.caster.cast(rays, lidar_agent_mask(self.boxes, spec, sensor_to_world))
        return lidar_points(hits, spec, rays)
