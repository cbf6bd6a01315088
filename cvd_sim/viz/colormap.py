"""Colour maps for depth and other scalar images (matplotlib's, vectorised to uint8)."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps


def colorize(
    values: np.ndarray, vmin: float, vmax: float, cmap: str = "turbo", invalid: np.ndarray | None = None
):
    """Map scalars `[...]` to uint8 RGB `[..., 3]`; pixels where `invalid` is True become black."""
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    scaled = np.clip((np.asarray(values, dtype=np.float64) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgb = lut[np.round(scaled * 255).astype(np.int64)]
    if invalid is not None:
        rgb[np.asarray(invalid, dtype=bool)] = 0
    return rgb


def colorize_depth(depth: np.ndarray, max_depth: float = 80.0) -> np.ndarray:
    """Depth in metres `[...]` (0 = unknown) to uint8 RGB `[..., 3]`; near is red, far is blue, log-scaled."""
    depth = np.asarray(depth, dtype=np.float64)
    inv = np.log1p(np.clip(depth, 0.0, max_depth)) / np.log1p(max_depth)
    return colorize(1.0 - inv, 0.0, 1.0, "turbo", invalid=depth <= 0)
