"""Procedural texture: a tileable smooth-noise image and the material pattern tables; `shading_kernel` samples
them at world coordinates."""

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


# Grain amount per texture kind (materials.TEXTURE_KINDS order: plain, noise, asphalt, facade, foliage).
GRAIN = np.array([0.0, 0.15, 0.25, 0.06, 0.55], np.float32)
FACADE = TEXTURE_KINDS.index("facade")
SEMANTIC_GRAIN = GRAIN[SEMANTIC_TEXTURE]  # [S] grain amount per semantic id
SEMANTIC_FACADE = SEMANTIC_TEXTURE == FACADE  # [S] bool


WINDOW_TINT = np.array([0.25, 0.28, 0.33], np.float32)
WINDOW_LIGHT = np.array([0.9, 0.7, 0.4], np.float32)
