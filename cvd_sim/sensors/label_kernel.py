"""Per-pixel labels of camera hits (z-depth, semantic, instance, sky) in one compiled pass (numba); its plain numpy
reference is in tests/test_sensors_kernels.py."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def pixel_labels(t, face, face_semantic, face_instance):
    """Labels of N hits: t [N] float32 (inf = miss), face [N] int64 face-table rows; face_semantic [F + 1] int16,
    face_instance [F + 1] int32 -> depth [N] float32 (0 = sky), semantic [N] uint8, instance [N] int32, sky [N]
    bool."""
    n = len(t)
    depth, semantic = np.empty(n, np.float32), np.empty(n, np.uint8)
    instance, sky = np.empty(n, np.int32), np.empty(n, np.bool_)
    for i in range(n):
        f = face[i]
        sky[i] = not np.isfinite(t[i])
        depth[i] = np.float32(0.0) if sky[i] else t[i]
        semantic[i] = np.uint8(face_semantic[f])
        instance[i] = face_instance[f]
    return depth, semantic, instance, sky
