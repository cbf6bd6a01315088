"""Procedural texture: a tileable smooth-noise image sampled at world coordinates, and material patterns."""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.ndimage import gaussian_filter

NOISE_SIZE = 256


@cache
def noise_image(seed: int = 0) -> np.ndarray:
    """Tileable smooth noise [NOISE_SIZE, NOISE_SIZE] float32 in [0, 1] (two blur scales mixed)."""
    rng = np.random.default_rng(seed)
    white = rng.random((NOISE_SIZE, NOISE_SIZE))
    mix = 0.65 * gaussian_filter(white, 1.5, mode="wrap") + 0.35 * gaussian_filter(white, 0.6, mode="wrap")
    mix = (mix - mix.min()) / (mix.max() - mix.min())
    return mix.astype(np.float32)


def sample_noise(uv: np.ndarray, texel: float, seed: int = 0) -> np.ndarray:
    """Noise in [0, 1] at 2D points uv [N, 2] (metres), one texel every `texel` metres (nearest) -> [N]."""
    img = noise_image(seed)
    idx = np.floor(uv * (1.0 / texel)).astype(np.int64) & (NOISE_SIZE - 1)
    return img[idx[:, 1], idx[:, 0]]


def surface_coords(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """2D coordinates [N, 2] on a surface: (x, y) on floors, (along-wall, z) on walls."""
    uv = points[:, :2].copy()
    wall = np.flatnonzero(np.abs(normals[:, 2]) < 0.7)
    p, n = points[wall], normals[wall]
    uv[wall, 0] = p[:, 1] * n[:, 0] - p[:, 0] * n[:, 1]
    uv[wall, 1] = p[:, 2]
    return uv


# Grain amount per texture kind (materials.TEXTURE_KINDS order: plain, noise, asphalt, facade, foliage).
GRAIN = np.array([0.0, 0.15, 0.25, 0.06, 0.55], np.float32)
FACADE = 3


WINDOW_TINT = np.array([0.25, 0.28, 0.33], np.float32)
WINDOW_LIGHT = np.array([0.9, 0.7, 0.4], np.float32)


def texture(kind: np.ndarray, points: np.ndarray, normals: np.ndarray, night: bool):
    """Procedural texture of N surface points with texture kinds [N] (indices into materials.TEXTURE_KINDS).

    points/normals [N, 3] world (normal sign is irrelevant). Returns grain [N] (colour multiplier), window
    indices [K] (to tint with WINDOW_TINT) and lit-window indices [L] (emitting WINDOW_LIGHT, night only).
    """
    uv = surface_coords(points, normals)
    grain = 1.0 + GRAIN[kind] * (sample_noise(uv, 0.1, seed=1) - 0.5)
    facade = np.flatnonzero((kind == FACADE) & (np.abs(normals[:, 2]) < 0.7))
    u, z = uv[facade, 0], uv[facade, 1]
    zf = z % 3.2
    window = ((u % 2.6) > 0.6) & (zf > 1.0) & (zf < 2.4) & (z > 1.2)
    lit = np.zeros(0, np.int64)
    if night and len(facade):
        cells = np.stack([np.floor(u / 2.6), np.floor(z / 3.2)], axis=1)
        lit = facade[window & (sample_noise(cells, 1.0, seed=3) > 0.55)]
    return grain, facade[window], lit
