"""Per-frame meshes of road users: category templates stretched into their boxes, all agents in one batch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.sensors.agent_shapes import PAINTS, agent_template
from cvd_sim.sensors.materials import agent_semantic_id
from cvd_sim.sensors.mesh_set import MeshSet


def instance_paint(instance_ids: np.ndarray, seed: int) -> np.ndarray:
    """Stable paint colour [N, 3] per instance id, varied by the dataset seed."""
    idx = (np.asarray(instance_ids, np.int64) * 2654435761 + seed * 97531) % (2**31)
    return PAINTS[idx % len(PAINTS)]


@dataclass(frozen=True)
class _Templates:
    """Every category's template, concatenated: vertices [V, 3] float64, faces [F, 3] int32 (indices within
    their template), face_albedo [F, 3], paint_mask [F]; per category: first vertex / face, counts [C]."""

    vertices: np.ndarray
    faces: np.ndarray
    face_albedo: np.ndarray
    paint_mask: np.ndarray
    vertex_start: np.ndarray
    vertex_count: np.ndarray
    face_start: np.ndarray
    face_count: np.ndarray


@cache
def _templates() -> _Templates:
    tpls = [agent_template(c) for c in range(len(CATEGORIES))]
    vertex_count = np.array([len(t.vertices) for t in tpls])
    face_count = np.array([len(t.faces) for t in tpls])
    return _Templates(
        np.concatenate([t.vertices for t in tpls]).astype(np.float64),
        np.concatenate([t.faces for t in tpls]).astype(np.int32),
        np.concatenate([t.face_albedo for t in tpls]),
        np.concatenate([t.paint_mask for t in tpls]),
        np.cumsum(vertex_count) - vertex_count,
        vertex_count,
        np.cumsum(face_count) - face_count,
        face_count,
    )


def _ranges(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges [start[i], start[i] + count[i]) concatenated -> (indices [sum(count)], owner of each)."""
    owner = np.repeat(np.arange(len(count)), count)
    first = np.cumsum(count) - count  # where each range begins in the output
    return np.arange(owner.size) + (start - first)[owner], owner


def agent_meshes(
    boxes: np.ndarray, categories: np.ndarray, instance_ids: np.ndarray, seed: int = 0
) -> MeshSet:
    """Meshes of N road users in the world frame, grouped by category (ascending), in input order within one.

    boxes [N, 7] world (x, y, z centre, length, width, height, yaw); categories [N] int; instance_ids [N] int.
    Every vertex stays inside its box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    categories = np.asarray(categories, np.int64).reshape(-1)
    instance_ids = np.asarray(instance_ids, np.int64).reshape(-1)
    if not len(categories):
        return MeshSet.empty()
    if categories.min() < 0 or categories.max() >= len(CATEGORIES):
        raise KeyError(f"no mesh template for category ids {sorted(set(categories.tolist()))}")
    order = np.argsort(categories, kind="stable")
    cats, b, ids = categories[order], boxes[order], instance_ids[order]
    tpl = _templates()
    vert, v_owner = _ranges(tpl.vertex_start[cats], tpl.vertex_count[cats])
    face, f_owner = _ranges(tpl.face_start[cats], tpl.face_count[cats])
    local = tpl.vertices.take(vert, axis=0) * b.take(v_owner, axis=0)[:, 3:6]  # [V, 3]
    c, s = np.cos(b[:, 6]).take(v_owner), np.sin(b[:, 6]).take(v_owner)
    vb = b.take(v_owner, axis=0)
    world = np.stack(
        [
            vb[:, 0] + c * local[:, 0] - s * local[:, 1],
            vb[:, 1] + s * local[:, 0] + c * local[:, 1],
            vb[:, 2] - vb[:, 5] / 2 + local[:, 2],
        ],
        axis=-1,
    )
    first_vertex = np.cumsum(tpl.vertex_count[cats]) - tpl.vertex_count[cats]  # [N] offset of each agent
    paint = instance_paint(ids, seed).take(f_owner, axis=0)
    return MeshSet(
        world.astype(np.float32),
        tpl.faces.take(face, axis=0) + first_vertex.astype(np.int32).take(f_owner)[:, None],
        np.where(tpl.paint_mask.take(face)[:, None], paint, tpl.face_albedo.take(face, axis=0)).astype(
            np.float32
        ),
        agent_semantic_id(cats).astype(np.int16).take(f_owner),
        ids.astype(np.int32).take(f_owner),
    )
