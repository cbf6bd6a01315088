"""Semantic classes of the ray-cast world: ids, base colours and LiDAR reflectivity.

Semantic id 0 is sky. Road users take `AGENT_SEMANTIC_OFFSET + category id` (see `cvd_sim.scenarios.categories`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvd_sim.scenarios.categories import CATEGORIES


@dataclass(frozen=True)
class Material:
    name: str
    albedo: tuple[float, float, float]  # linear RGB in [0, 1]
    reflectivity: float  # LiDAR intensity scale in [0, 1]
    texture: str  # procedural pattern: "noise", "asphalt", "facade", "foliage", "plain"


STATIC_MATERIALS: tuple[Material, ...] = (
    Material("sky", (0.0, 0.0, 0.0), 0.0, "plain"),
    Material("road", (0.22, 0.22, 0.23), 0.10, "asphalt"),
    Material("lane_marking_white", (0.85, 0.85, 0.82), 0.80, "noise"),
    Material("lane_marking_yellow", (0.85, 0.65, 0.12), 0.75, "noise"),
    Material("crosswalk", (0.88, 0.88, 0.86), 0.80, "noise"),
    Material("sidewalk", (0.55, 0.53, 0.50), 0.25, "noise"),
    Material("curb", (0.65, 0.64, 0.62), 0.30, "noise"),
    Material("terrain", (0.30, 0.38, 0.18), 0.20, "foliage"),
    Material("building", (0.60, 0.55, 0.48), 0.35, "facade"),
    Material("vegetation", (0.16, 0.34, 0.12), 0.30, "foliage"),
    Material("trunk", (0.33, 0.24, 0.16), 0.30, "noise"),
    Material("pole", (0.45, 0.46, 0.48), 0.50, "plain"),
)
SEMANTIC_NAMES: tuple[str, ...] = tuple(m.name for m in STATIC_MATERIALS) + tuple(c.name for c in CATEGORIES)
SEMANTIC_ID: dict[str, int] = {name: i for i, name in enumerate(SEMANTIC_NAMES)}
SKY_ID = SEMANTIC_ID["sky"]
AGENT_SEMANTIC_OFFSET = len(STATIC_MATERIALS)
TEXTURE_KINDS: tuple[str, ...] = ("plain", "noise", "asphalt", "facade", "foliage")

# Per-semantic-id lookup tables, [S] or [S, 3].
SEMANTIC_REFLECTIVITY = np.array(
    [m.reflectivity for m in STATIC_MATERIALS] + [0.6 if c.is_vehicle else 0.4 for c in CATEGORIES],
    np.float32,
)
SEMANTIC_TEXTURE = np.array(
    [TEXTURE_KINDS.index(m.texture) for m in STATIC_MATERIALS]
    + [TEXTURE_KINDS.index("noise")] * len(CATEGORIES),
    np.int64,
)


def agent_semantic_id(category: int | np.ndarray) -> int | np.ndarray:
    """Semantic id of a road user of the given category id(s)."""
    return AGENT_SEMANTIC_OFFSET + category


def albedo(name: str) -> np.ndarray:
    """Base colour [3] of a static material."""
    return np.asarray(STATIC_MATERIALS[SEMANTIC_ID[name]].albedo, np.float32)
