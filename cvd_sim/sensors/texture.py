"""Procedural texture: a tileable smooth-noise image sampled at world coordinates, and material patterns."""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.ndimage import gaussian_filter

from cvd_sim.sensors.materials import SEMANTIC_TEXTURE, TEXTURE_KINDS

NOISE_SIZE = 256  # a power of two: texel indices wrap with a bit mask


@cache
def noise_image(seed: int = 0) -> np.ndarray:
    """Tileable smooth noise [NOISE_SIZE, NOISE_SIZE] float32 in [0, 1] (two blur scales mixed)."""
    rng = np.random.default_rng(seed)
    white = rng.random((NOISE_SIZE, NOISE_SIZE))
    mix = 0.65 * gaussian_filter(white, 1.5, mode="wrap") + 0.35 * gaussian_filter(white, 0.6, mode="wrap")
    mix = (mix - mix.min()) / (mix.max() - mix.min())
    return mix.astype(np.float32)


def _texel(coord: np.ndarray, texel: float) -> np.ndarray:
    """Wrapped texel index [N] int64 of coordinates [N] (metres), one texel every `texel` metres."""
    scaled = coord * (1.0 / texel)
    return np.floor(scaled, out=scaled).astype(np.int64) & (NOISE_SIZE - 1)


def sample_noise(u: np.ndarray, v: np.ndarray, texel: float, seed: int = 0) -> np.ndarray:
    """Noise in [0, 1] at 2D points (u [N], v [N], metres), one texel every `texel` metres (nearest) -> [N]."""
    flat = _texel(v, texel) * NOISE_SIZE
    flat += _texel(u, texel)
    return noise_image(seed).ravel().take(flat)


def surface_coords(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D coordinates u [N], v [N] on a surface: (x, y) on floors, (along-wall, z) on walls; and the wall
    mask [N] bool. points/normals [N, 3]."""
    wall = np.abs(normals[:, 2]) < 0.7
    x, y = points[:, 0], points[:, 1]
    along = y * normals[:, 0]
    along -= x * normals[:, 1]
    return np.where(wall, along, x), np.where(wall, points[:, 2], y), wall


# Grain amount per texture kind (materials.TEXTURE_KINDS order: plain, noise, asphalt, facade, foliage).
GRAIN = np.array([0.0, 0.15, 0.25, 0.06, 0.55], np.float32)
FACADE = TEXTURE_KINDS.index("facade")
SEMANTIC_GRAIN = GRAIN[SEMANTIC_TEXTURE]  # [S] grain amount per semantic id
SEMANTIC_FACADE = SEMANTIC_TEXTURE == FACADE  # [S] bool


WINDOW_TINT = np.array([0.25, 0.28, 0.33], np.float32)
WINDOW_LIGHT = np.array([0.9, 0.7, 0.4], np.float32)


def texture(semantic: np.ndarray, points: np.ndarray, normals: np.ndarray, night: bool):
    """Procedural texture of N surface points with semantic ids [N] (materials.SEMANTIC_NAMES).

    points/normals [N, 3] world (normal sign is irrelevant). Returns grain [N] float32 (colour multiplier),
    window indices [K] (to tint with WINDOW_TINT) and lit-window indices [L] (emitting WINDOW_LIGHT, night only).
    """
    u, v, wall = surface_coords(points, normals)
    grain = sample_noise(u, v, 0.1, seed=1)
    grain -= np.float32(0.5)
    grain *= SEMANTIC_GRAIN[semantic]
    grain += np.float32(1.0)
    facade = np.flatnonzero(SEMANTIC_FACADE[semantic] & wall)
    if not len(facade):
        return grain, facade, facade
    u, z = u[facade], v[facade]
    zf = z % 3.2
    window = ((u % 2.6) > 0.6) & (zf > 1.0) & (zf < 2.4) & (z > 1.2)
    lit = np.zeros(0, np.int64)
    if night:
        lit = facade[window & (sample_noise(np.floor(u / 2.6), np.floor(z / 3.2), 1.0, seed=3) > 0.55)]
    return grain, facade[window], lit
