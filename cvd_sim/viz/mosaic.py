"""Mosaics of the six surround views: front row FL | F | FR, back row BL | B | BR (seen from the car)."""

from __future__ import annotations

import numpy as np

# Positions in the 2x3 grid for the nuScenes ring order FL, F, FR, BR, B, BL.
RING_TO_GRID = {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (1, 2), 4: (1, 1), 5: (1, 0)}


def ring_mosaic(views: np.ndarray, border: int = 2) -> np.ndarray:
    """Six views `[6, H, W, 3]` uint8 in ring order -> one image `[2H + 3b, 3W + 4b, 3]` uint8.

    Any other view count is laid out in one row.
    """
    views = np.asarray(views)
    n, h, w = views.shape[:3]
    if n != 6:
        return np.concatenate(list(views), axis=1)
    out = np.zeros((2 * h + 3 * border, 3 * w + 4 * border, 3), dtype=np.uint8)
    for i, (r, c) in RING_TO_GRID.items():
        y, x = border + r * (h + border), border + c * (w + border)
        out[y : y + h, x : x + w] = views[i]
    return out


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1], channels first `[..., 3, H, W]` -> uint8 channels last `[..., H, W, 3]`."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip((np.moveaxis(images, -3, -1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def stack_panels(panels: list[np.ndarray], axis: int = 1, fill: int = 0) -> np.ndarray:
    """Concatenate uint8 images `[H_i, W_i, 3]`, padding the other axis to the largest size."""
    other = 0 if axis == 1 else 1
    size = max(p.shape[other] for p in panels)
    padded = []
    for p in panels:
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, size - p.shape[other])
        padded.append(np.pad(p, pad, constant_values=fill))
    return np.concatenate(padded, axis=axis)
