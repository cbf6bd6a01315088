"""Plain numpy reference of the per-face radiance (`shading.face_radiance`), whose passes are compiled."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.lighting import Lighting
from cvd_sim.sensors.mesh_set import MeshSet


def face_radiance_numpy(mesh: MeshSet, lighting: Lighting) -> np.ndarray:
    """Sun + ambient light reflected by each face, seen from its front and back side -> [F, 2, 3] float32."""
    v = mesh.vertices.take(mesh.faces, axis=0)  # [F, 3 corners, 3]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    n = np.empty_like(e1)
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):  # the cross product, column by column
        n[:, i] = e1[:, j] * e2[:, k] - e1[:, k] * e2[:, j]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    cos = n @ lighting.sun_direction
    out = np.empty((len(n), 2, 3), np.float32)
    for side, sun in enumerate((np.maximum(cos, 0.0), np.maximum(-cos, 0.0))):
        for c in range(3):
            light = lighting.ambient[c] + sun * lighting.sun_colour[c]
            np.multiply(mesh.face_albedo[:, c], light, out=out[:, side, c])
    return out
