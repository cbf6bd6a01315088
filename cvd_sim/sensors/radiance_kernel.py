"""Per-face sun + ambient light as compiled passes (numba), float32 in the order of their plain numpy reference
(tests/sensors_numpy_radiance.py), so tables agree with it bit for bit."""

from __future__ import annotations

import numba
import numpy as np

F32 = np.float32
MIN_LENGTH = F32(1e-12)  # a degenerate face keeps its (near) zero normal


@numba.njit(cache=True, nogil=True)
def face_normals(vertices, faces):
    """Unit normals [F, 3] float32, cross(v1 - v0, v2 - v0) normalised, of faces [F, 3] (int) over vertices
    [V, 3] float32."""
    out = np.empty((len(faces), 3), np.float32)
    for f in range(len(faces)):
        v0, v1, v2 = vertices[faces[f, 0]], vertices[faces[f, 1]], vertices[faces[f, 2]]
        e1x, e1y, e1z = v1[0] - v0[0], v1[1] - v0[1], v1[2] - v0[2]
        e2x, e2y, e2z = v2[0] - v0[0], v2[1] - v0[1], v2[2] - v0[2]
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        length = max(np.sqrt(nx * nx + ny * ny + nz * nz), MIN_LENGTH)
        out[f, 0], out[f, 1], out[f, 2] = nx / length, ny / length, nz / length
    return out


@numba.njit(cache=True, nogil=True)
def side_radiance(cos_sun, albedo, ambient, sun_colour):
    """Light [F, 2, 3] float32 reflected by each face's front and back side: albedo [F, 3] times (ambient [3]
    + sun_colour [3] times the cosine of the sun on that side, cos_sun [F] float32 for the front, if positive)."""
    out = np.empty((len(cos_sun), 2, 3), np.float32)
    for f in range(len(cos_sun)):
        for side in range(2):
            sun = max(cos_sun[f] if side == 0 else -cos_sun[f], F32(0.0))
            for c in range(3):
                out[f, side, c] = albedo[f, c] * (ambient[c] + sun * sun_colour[c])
    return out
