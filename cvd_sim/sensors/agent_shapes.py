"""Template meshes of road users, shaped like the real thing and sized from their box.

Each template lives in a normalised box frame: x in [-0.5, 0.5] (forward), y in [-0.5, 0.5] (left), z in [0, 1]
(up from the ground), and is stretched to (length, width, height) when placed. Faces whose colour varies by
instance (car paint, clothes) are flagged in `paint_mask`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import trimesh

from cvd_sim.scenarios.categories import CATEGORY_ID

GLASS = (0.08, 0.10, 0.13)
TYRE = (0.04, 0.04, 0.04)
SKIN = (0.72, 0.55, 0.42)
METAL = (0.50, 0.50, 0.52)
CONE_ORANGE = (0.95, 0.35, 0.05)
WHITE = (0.90, 0.90, 0.90)
RED = (0.75, 0.08, 0.06)
PAINTS = np.array(
    [
        (0.80, 0.80, 0.82), (0.10, 0.10, 0.11), (0.55, 0.56, 0.58), (0.62, 0.05, 0.05),
        (0.05, 0.16, 0.45), (0.85, 0.85, 0.80), (0.15, 0.30, 0.18), (0.70, 0.55, 0.20),
        (0.35, 0.20, 0.10), (0.90, 0.70, 0.10),
    ],
    np.float32,
)  # fmt: skip


@dataclass(frozen=True)
class AgentTemplate:
    """vertices [Nv, 3] in the normalised box frame; faces [Nf, 3]; face_albedo [Nf, 3]; paint_mask [Nf] bool."""

    vertices: np.ndarray
    faces: np.ndarray
    face_albedo: np.ndarray
    paint_mask: np.ndarray


def _box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return trimesh.creation.box(
        extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2)
    )


def _wheel(x: float, y: float, radius: float, thickness: float) -> trimesh.Trimesh:
    """Cylinder with its axis along y, touching the ground."""
    cyl = trimesh.creation.cylinder(radius=radius, height=thickness, sections=12)
    cyl.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    cyl.apply_translation((x, y, radius))
    return cyl


def _assemble(parts: list[tuple[trimesh.Trimesh, tuple[float, float, float] | None]]) -> AgentTemplate:
    """Parts with a fixed colour, or None for the instance paint."""
    verts, faces, albedo, paint, offset = [], [], [], [], 0
    for mesh, colour in parts:
        verts.append(np.asarray(mesh.vertices))
        faces.append(np.asarray(mesh.faces) + offset)
        offset += len(mesh.vertices)
        n = len(mesh.faces)
        albedo.append(np.tile(np.asarray(colour if colour is not None else (0, 0, 0), np.float32), (n, 1)))
        paint.append(np.full(n, colour is None))
    return AgentTemplate(
        np.concatenate(verts).astype(np.float32),
        np.concatenate(faces).astype(np.int32),
        np.concatenate(albedo),
        np.concatenate(paint),
    )


def _car_like(cabin_front: float, cabin_back: float, body_top: float, wheel_r: float) -> AgentTemplate:
    """Body box, glass cabin on top, four wheels. Lengths as fractions of the box."""
    wheel_x = 0.5 - 1.6 * wheel_r
    return _assemble(
        [
            (_box((-0.5, -0.5, 0.18), (0.5, 0.5, body_top)), None),
            (_box((cabin_back, -0.44, body_top), (cabin_front, 0.44, 1.0)), GLASS),
            (_box((cabin_back + 0.02, -0.40, 0.97), (cabin_front - 0.02, 0.40, 1.0)), None),
            *[(_wheel(sx * wheel_x, sy * 0.42, wheel_r, 0.16), TYRE) for sx in (-1, 1) for sy in (-1, 1)],
        ]
    )


def _truck() -> AgentTemplate:
    return _assemble(
        [
            (_box((0.22, -0.5, 0.12), (0.5, 0.5, 0.72)), None),
            (_box((0.30, -0.46, 0.72), (0.5, 0.46, 0.78)), GLASS),
            (_box((-0.5, -0.5, 0.14), (0.20, 0.5, 1.0)), WHITE),
            *[(_wheel(x, sy * 0.42, 0.11, 0.14), TYRE) for x in (-0.38, -0.22, 0.36) for sy in (-1, 1)],
        ]
    )


def _bus() -> AgentTemplate:
    return _assemble(
        [
            (_box((-0.5, -0.5, 0.10), (0.5, 0.5, 0.55)), None),
            (_box((-0.49, -0.5, 0.55), (0.5, 0.5, 0.85)), GLASS),
            (_box((-0.5, -0.5, 0.85), (0.5, 0.5, 1.0)), None),
            *[(_wheel(x, sy * 0.42, 0.09, 0.12), TYRE) for x in (-0.32, 0.36) for sy in (-1, 1)],
        ]
    )


def _person() -> AgentTemplate:
    head = trimesh.creation.icosphere(subdivisions=1, radius=0.5)
    head.apply_scale((0.28, 0.30, 0.075))
    head.apply_translation((0.0, 0.0, 0.925))
    return _assemble(
        [
            (_box((-0.12, -0.22, 0.0), (0.12, -0.04, 0.48)), (0.15, 0.15, 0.25)),
            (_box((-0.12, 0.04, 0.0), (0.12, 0.22, 0.48)), (0.15, 0.15, 0.25)),
            (_box((-0.25, -0.30, 0.48), (0.25, 0.30, 0.85)), None),
            (_box((-0.10, -0.45, 0.52), (0.10, -0.31, 0.84)), None),
            (_box((-0.10, 0.31, 0.52), (0.10, 0.45, 0.84)), None),
            (head, SKIN),
        ]
    )


def _two_wheeler(motor: bool) -> AgentTemplate:
    """Bicycle or motorcycle with a rider; the rider's clothes take the instance paint."""
    r = 0.21
    head = trimesh.creation.icosphere(subdivisions=1, radius=0.5)
    head.apply_scale((0.14, 0.45, 0.13))
    head.apply_translation((0.02, 0.0, 0.92))
    frame = (-0.30, -0.12, 0.22), (0.30, 0.12, 0.50 if motor else 0.42)
    return _assemble(
        [
            (_wheel(-0.5 + r, 0.0, r, 0.12), TYRE),
            (_wheel(0.5 - r, 0.0, r, 0.12), TYRE),
            (_box(*frame), RED if motor else METAL),
            (_box((-0.18, -0.35, 0.45), (0.08, 0.35, 0.85)), None),
            (_box((0.08, -0.40, 0.66), (0.25, 0.40, 0.72)), METAL),
            (head, SKIN),
        ]
    )


def _cone() -> AgentTemplate:
    cone = trimesh.creation.cone(radius=0.45, height=0.95, sections=12)
    cone.apply_translation((0, 0, 0.05))
    stripe = trimesh.creation.cylinder(radius=0.30, height=0.12, sections=12)
    stripe.apply_translation((0, 0, 0.45))
    return _assemble(
        [(_box((-0.5, -0.5, 0.0), (0.5, 0.5, 0.05)), CONE_ORANGE), (cone, CONE_ORANGE), (stripe, WHITE)]
    )


def _barrier() -> AgentTemplate:
    parts = [
        (_box((-0.45, -0.5 + 0.1 * i, 0.35), (0.45, -0.4 + 0.1 * i, 1.0)), RED if i % 2 else WHITE)
        for i in range(10)
    ]
    parts += [(_box((-0.5, -0.5, 0.0), (0.5, 0.5, 0.35)), (0.55, 0.55, 0.55))]
    return _assemble(parts)


@cache
def agent_template(category: int) -> AgentTemplate:
    """The template of a category id (see `cvd_sim.scenarios.categories`)."""
    builders = {
        CATEGORY_ID["car"]: lambda: _car_like(0.22, -0.30, 0.58, 0.075),
        CATEGORY_ID["truck"]: _truck,
        CATEGORY_ID["bus"]: _bus,
        CATEGORY_ID["pedestrian"]: _person,
        CATEGORY_ID["bicycle"]: lambda: _two_wheeler(False),
        CATEGORY_ID["motorcycle"]: lambda: _two_wheeler(True),
        CATEGORY_ID["traffic_cone"]: _cone,
        CATEGORY_ID["barrier"]: _barrier,
    }
    if category not in builders:
        raise KeyError(f"no mesh template for category id {category}")
    return builders[category]()
