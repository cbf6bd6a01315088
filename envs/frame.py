"""The env's `render()` picture: six views (ring mosaic) over colour-mapped depth, beside a BEV panel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cvd_sim.envs.backend import SensorFrame

from cvd_sim.viz.colormap import colorize_depth
from cvd_sim.viz.mosaic import ring_mosaic, stack_panels


def sensor_mosaic(frame: SensorFrame) -> np.ndarray:
    """uint8 [2 * mosaic_h, mosaic_w, 3]: the RGB ring mosaic above the depth ring mosaic."""
    return stack_panels([ring_mosaic(frame.images), ring_mosaic(colorize_depth(frame.depth))], axis=0)


def compose_frame(frame: SensorFrame | None, bev: Callable[[int], np.ndarray], min_bev: int) -> np.ndarray:
    """uint8 [H, W, 3]: the sensor mosaic (when there are sensors) with a square BEV panel `bev(size)` to its
    right, as tall as the mosaic (at least `min_bev` pixels)."""
    if frame is None:
        return bev(min_bev)
    mosaic = sensor_mosaic(frame)
    return stack_panels([mosaic, bev(max(mosaic.shape[0], min_bev))], axis=1)
