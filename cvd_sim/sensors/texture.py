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
    """Wrapped texel index [N] int32 of coordinates [N] (metres, |coord| < 2**31 texels), one texel every
    `texel` metres."""
    scaled = coord * (1.0 / texel)
    index = np.floor(scaled, out=scaled).astype(np.int32)
    index &= NOISE_SIZE - 1
    return index


def sample_noise(u: np.ndarray, v: np.ndarray, texel: float, seed: int = 0) -> np.ndarray:
    """Noise in [0, 1] at 2D points (u [N], v [N], metres), one texel every `texel` metres (nearest) -> [N]."""
    flat = _texel(v, texel)
    flat <<= NOISE_SIZE.bit_length() - 1  # row * NOISE_SIZE
    flat |= _texel(u, texel)
    return noise_image(seed).ravel().take(flat)


def surface_coords(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D coordinates u [N], v [N] on a surface: (x, y) on floors, (along-wall, z) on walls; and the wall
    mask [N] bool. points/normals [3, N] (channel-major)."""
    wall = np.abs(normals[2]) < 0.7
    x, y = points[0], points[1]
    along = y * normals[0]
    along -= x * normals[1]
    return np.where(wall, along, x), np.where(wall, points[2], y), wall


def _remainder(a: np.ndarray, b: float) -> np.ndarray:
    """a % b [N] float32, bit for bit numpy's float32 remainder (b > 0, |a| < 2**28 b), ~10x faster than its
    fmodf: in float64, a - floor(a / b) * b is exact for float32 a and b (a floor one too high leaves r < 0,
    fixed by adding b), and rounding r to float32 rounds the same sum numpy's fmod + b does."""
    b64 = np.float64(np.float32(b))
    a64 = a.astype(np.float64)
    r = a64 - np.floor(a64 / b64) * b64
    r[r < 0] += b64
    return r.astype(np.float32)


# Grain amount per texture kind (materials.TEXTURE_KINDS order: plain, noise, asphalt, facade, foliage).
GRAIN = np.array([0.0, 0.15, 0.25, 0.06, 0.55], np.float32)
FACADE = TEXTURE_KINDS.index("facade")
SEMANTIC_GRAIN = GRAIN[SEMANTIC_TEXTURE]  # [S] grain amount per semantic id
SEMANTIC_FACADE = SEMANTIC_TEXTURE == FACADE  # [S] bool


WINDOW_TINT = np.array([0.25, 0.28, 0.33], np.float32)
WINDOW_LIGHT = np.array([0.9, 0.7, 0.4], np.float32)


def texture(semantic: np.ndarray, points: np.ndarray, normals: np.ndarray, night: bool):
    """Procedural texture of N surface points with semantic ids [N] (materials.SEMANTIC_NAMES).

    points/normals [3, N] world, channel-major (normal sign is irrelevant). Returns grain [N] float32 (colour
    multiplier), window indices [K] (to tint with WINDOW_TINT) and lit-window indices [L] (emitting
    WINDOW_LIGHT, night only).
    """
    u, v, wall = surface_coords(points, normals)
    grain = sample_noise(u, v, 0.1, seed=1)
    grain -= np.float32(0.5)
    grain *= SEMANTIC_GRAIN[semantic]
    grain += np.float32(1.0)
    facade = np.flatnonzero(SEMANTIC_FACADE[semantic] & wall & (v > 1.2))  # no window below 1.2 m
    if not len(facade):
        return grain, facade, facade
    u, z = u[facade], v[facade]
    zf = _remainder(z, 3.2)
    band = np.flatnonzero((zf > 1.0) & (zf < 2.4))  # a storey's window band; narrowed step by step
    window = band[_remainder(u[band], 2.6) > 0.6]
    lit = np.zeros(0, np.int64)
    if night:
        lit = facade[
            window[sample_noise(np.floor(u[window] / 2.6), np.floor(z[window] / 3.2), 1.0, seed=3) > 0.55]
        ]
    return grain, facade[window], lit
