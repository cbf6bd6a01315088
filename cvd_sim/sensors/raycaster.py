"""Two-level ray casting on open3d: a static scene built once per map, an agent scene rebuilt each frame.

A ray's first hit is the nearer of its hits in the two scenes. Per-face attributes of both scenes sit in one
table (static faces, then agent faces, then one "miss" row), so each attribute is a single gather, made only
when asked for.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import open3d as o3d

from cvd_sim.sensors.hit_merge import merge_first_hits
from cvd_sim.sensors.materials import SKY_ID
from cvd_sim.sensors.mesh_set import MeshSet


class Hits:
    """First hits of rays with any leading shape [...].

    t [...] float32 hit distance in units of the ray direction (inf = miss); face [...] int64 row of the
    caster's face table (the last row on a miss); normal [..., 3] unit face normal, right-handed winding
    (cross(v1 - v0, v2 - v0), not turned towards the ray; 0 on a miss); caster: the RayCaster whose face
    table `face` indexes. Lazily gathered: albedo [..., 3], semantic [...] int16 (SKY_ID on a miss), instance
    [...] int32 (-1 = static or miss).
    """

    def __init__(self, t: np.ndarray, face: np.ndarray, normal: np.ndarray, caster: RayCaster):
        self.t, self.face, self.normal = t, face, normal
        self.caster = caster

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.t)

    def take(self, rows: np.ndarray) -> Hits:
        """Hits [K] of the flat rows [K] (indices into the flattened leading shape)."""
        t, face, normal = self.t.reshape(-1), self.face.reshape(-1), self.normal.reshape(-1, 3)
        return Hits(t.take(rows), face.take(rows), normal.take(rows, axis=0), self.caster)

    @cached_property
    def albedo(self) -> np.ndarray:
        return self.caster.face_albedo.take(self.face, axis=0)

    @cached_property
    def semantic(self) -> np.ndarray:
        return self.caster.face_semantic.take(self.face)

    @cached_property
    def instance(self) -> np.ndarray:
        return self.caster.face_instance.take(self.face)


_HIT_KEYS = ("t_hit", "primitive_ids", "primitive_normals")  # of RaycastingScene.cast_rays


def _scene(mesh: MeshSet) -> o3d.t.geometry.RaycastingScene:
    scene = o3d.t.geometry.RaycastingScene()
    if mesh.num_faces:
        scene.add_triangles(
            o3d.core.Tensor.from_numpy(mesh.vertices), o3d.core.Tensor(mesh.faces.astype(np.uint32))
        )
    return scene


class RayCaster:
    """Casts rays against a static MeshSet plus the current frame's agent MeshSet."""

    def __init__(self, static: MeshSet, nthreads: int = 0):
        self.static = static
        self.nthreads = nthreads
        self._static_scene = _scene(static)
        self._albedo = np.zeros((0, 3), np.float32)  # face tables: static rows, agent rows, one miss row
        self.set_agents(MeshSet.empty())

    def set_agents(self, agents: MeshSet) -> None:
        """Replace the dynamic geometry (cheap: only the agents' triangles are indexed)."""
        self.agents = agents
        self._agent_scene = _scene(agents) if agents.num_faces else None
        fs, fa = self.static.num_faces, agents.num_faces
        if len(self._albedo) < fs + fa + 1:  # grow the tables, keep static rows
            size = fs + max(2 * fa, 4096) + 1
            self._albedo = np.zeros((size, 3), np.float32)
            self._semantic = np.full(size, SKY_ID, np.int16)
            self._instance = np.full(size, -1, np.int32)
            self._albedo[:fs], self._semantic[:fs], self._instance[:fs] = (
                self.static.face_albedo, self.static.face_semantic, self.static.face_instance
            )  # fmt: skip
        self._albedo[fs : fs + fa], self._albedo[fs + fa] = agents.face_albedo, 0.0
        self._semantic[fs : fs + fa], self._semantic[fs + fa] = agents.face_semantic, SKY_ID
        self._instance[fs : fs + fa], self._instance[fs + fa] = agents.face_instance, -1
        self.miss_face = fs + fa
        self.face_albedo = self._albedo[: fs + fa + 1]
        self.face_semantic = self._semantic[: fs + fa + 1]
        self.face_instance = self._instance[: fs + fa + 1]

    def cast(self, rays: np.ndarray, agent_mask: np.ndarray | None = None) -> Hits:
        """rays [..., 6] float32 (origin, direction) world -> Hits [...].

        agent_mask [...] bool (optional): the only rays that may hit an agent (a conservative cull, see
        `culling`); the agent scene is cast on those alone.
        """
        shape = rays.shape[:-1]
        flat = np.ascontiguousarray(rays, np.float32).reshape(-1, 6)
        out = self._static_scene.cast_rays(o3d.core.Tensor.from_numpy(flat), nthreads=self.nthreads)
        t, ids, normal = (out[key].numpy() for key in _HIT_KEYS)
        rows = np.zeros(0, np.int64)  # the rays cast on the agent scene
        if self._agent_scene is not None:
            rows = np.arange(len(flat)) if agent_mask is None else np.flatnonzero(agent_mask.reshape(-1))
        agent_hits = t[:0], ids[:0], normal[:0]
        if len(rows):
            sub = flat.take(rows, axis=0)  # take: rows gathered ~4x faster than []
            agent_out = self._agent_scene.cast_rays(o3d.core.Tensor.from_numpy(sub), nthreads=self.nthreads)
            agent_hits = tuple(agent_out[key].numpy() for key in _HIT_KEYS)
        face = merge_first_hits(t, ids, normal, rows, *agent_hits, self.static.num_faces, self.miss_face)
        return Hits(t.reshape(shape), face.reshape(shape), normal.reshape(*shape, 3), self)
