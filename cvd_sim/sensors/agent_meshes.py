"""Road-user meshes for one frame: category templates stretched to each box, painted per instance."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.agent_shapes import PAINTS, agent_template
from cvd_sim.sensors.materials import agent_semantic_id
from cvd_sim.sensors.mesh_set import MeshSet


def instance_paint(instance_ids: np.ndarray, seed: int) -> np.ndarray:
    """Stable paint colour [N, 3] per instance id, varied by the dataset seed."""
    idx = (np.asarray(instance_ids, np.int64) * 2654435761 + seed * 97531) % (2**31)
    return PAINTS[idx % len(PAINTS)]


def agent_meshes(
    boxes: np.ndarray, categories: np.ndarray, instance_ids: np.ndarray, seed: int = 0
) -> MeshSet:
    """Meshes of N road users in the world frame (instances of one category placed in one batch).

    boxes [N, 7] world (x, y, z centre, length, width, height, yaw); categories [N] int; instance_ids [N] int.
    Every vertex stays inside its box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    categories = np.asarray(categories, np.int64).reshape(-1)
    instance_ids = np.asarray(instance_ids, np.int64).reshape(-1)
    paints = instance_paint(instance_ids, seed)
    parts = []
    for cat in np.unique(categories):
        sel = np.flatnonzero(categories == cat)
        tpl = agent_template(int(cat))
        b = boxes[sel]
        local = tpl.vertices[None].astype(np.float64) * b[:, None, 3:6]  # [n, Nv, 3]
        c, s = np.cos(b[:, 6:7]), np.sin(b[:, 6:7])
        world = np.stack(
            [
                b[:, 0:1] + c * local[..., 0] - s * local[..., 1],
                b[:, 1:2] + s * local[..., 0] + c * local[..., 1],
                b[:, 2:3] - b[:, 5:6] / 2 + local[..., 2],
            ],
            axis=-1,
        )
        n, nv, nf = len(sel), len(tpl.vertices), len(tpl.faces)
        albedo = np.where(tpl.paint_mask[None, :, None], paints[sel][:, None], tpl.face_albedo[None])
        parts.append(
            MeshSet(
                world.reshape(-1, 3).astype(np.float32),
                (tpl.faces[None] + (np.arange(n) * nv)[:, None, None]).reshape(-1, 3).astype(np.int32),
                albedo.reshape(-1, 3).astype(np.float32),
                np.full(n * nf, agent_semantic_id(int(cat)), np.int16),
                np.repeat(instance_ids[sel], nf).astype(np.int32),
            )
        )
    return MeshSet.concatenate(parts)
