"""`MeshSet`: triangles with per-face colour, semantic id and instance id, ready for the ray caster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh


@dataclass
class MeshSet:
    """A triangle soup with per-face attributes.

    vertices [Nv, 3] float32 world (or object) metres; faces [Nf, 3] int32;
    face_albedo [Nf, 3] float32 linear RGB; face_semantic [Nf] int16; face_instance [Nf] int32 (-1 = static).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_albedo: np.ndarray
    face_semantic: np.ndarray
    face_instance: np.ndarray

    @classmethod
    def empty(cls) -> MeshSet:
        return cls(
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.int32),
            np.zeros((0, 3), np.float32),
            np.zeros((0,), np.int16),
            np.zeros((0,), np.int32),
        )

    @classmethod
    def from_trimesh(cls, mesh: trimesh.Trimesh, albedo, semantic: int, instance: int = -1) -> MeshSet:
        """One mesh painted with one colour ([3]) or per-face colours ([Nf, 3])."""
        n = len(mesh.faces)
        colours = np.broadcast_to(np.asarray(albedo, np.float32), (n, 3)).copy()
        return cls(
            np.asarray(mesh.vertices, np.float32),
            np.asarray(mesh.faces, np.int32),
            colours,
            np.full(n, semantic, np.int16),
            np.full(n, instance, np.int32),
        )

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    def transformed(self, matrix: np.ndarray) -> MeshSet:
        """Copy with vertices moved by a 4x4 rigid transform."""
        v = self.vertices @ matrix[:3, :3].T.astype(np.float32) + matrix[:3, 3].astype(np.float32)
        return MeshSet(v, self.faces, self.face_albedo, self.face_semantic, self.face_instance)

    def to_trimesh(self) -> trimesh.Trimesh:
        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    @staticmethod
    def concatenate(parts: list[MeshSet]) -> MeshSet:
        parts = [p for p in parts if p.num_faces]
        if not parts:
            return MeshSet.empty()
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return MeshSet(
            np.concatenate([p.vertices for p in parts]).astype(np.float32),
            np.concatenate([p.faces + o for p, o in zip(parts, offsets)]).astype(np.int32),
            np.concatenate([p.face_albedo for p in parts]).astype(np.float32),
            np.concatenate([p.face_semantic for p in parts]).astype(np.int16),
            np.concatenate([p.face_instance for p in parts]).astype(np.int32),
        )
