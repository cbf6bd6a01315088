"""The first hits of two-level casts merged in one compiled pass (numba): static hits, replaced by agent hits
where those are nearer. Its plain numpy reference is in tests/test_sensors_kernels.py."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def merge_first_hits(t, ids, normal, rows, t_agent, ids_agent, normal_agent, static_faces, miss_face):
    """Face-table rows [N] int64 of the nearer hits; t [N] and normal [N, 3] are updated in place.

    Static-scene hits of N rays: t [N] float32 (inf = miss), ids [N] uint32 primitive ids (a miss is
    RaycastingScene.INVALID_ID), normal [N, 3]. Agent-scene hits of the rays rows [K]: t_agent [K], ids_agent
    [K], normal_agent [K, 3]; agent faces follow the static_faces static ones in the table, misses map to
    miss_face (the table's last row).
    """
    face = np.empty(len(ids), np.int64)
    for i in range(len(ids)):
        face[i] = min(np.int64(ids[i]), miss_face)
    for k in range(len(rows)):
        i = rows[k]
        if t_agent[k] < t[i]:
            t[i] = t_agent[k]
            face[i] = np.int64(ids_agent[k]) + static_faces
            normal[i] = normal_agent[k]
    return face
