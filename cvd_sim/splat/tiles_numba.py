"""`plan_tiles` as a compiled CPU kernel (numba): two counting passes instead of a sort of the tile entries.

Gaussians are visited front to back (one stable sort of the depths), so each tile's entries come out front to
back without sorting them. `plan_tiles` is the plain-torch reference; the tests hold the plans
equal.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from cvd_sim.splat.numba_threads import match_torch_threads
from cvd_sim.splat.projection import ALPHA_THRESHOLD, RADIUS_SIGMAS
from cvd_sim.splat.tiles import TILE, TilePlan, padding_mask, sortable_bits


@numba.njit(parallel=True, cache=True, nogil=True)
def _pixel_boxes(means2d, conics, opacities, order, width, height, boxes):
    """`tiles.pixel_boxes` (float64) of Gaussians `order` [V] -> boxes [V, 4] = (x0, x1, y0, y1) inclusive."""
    for j in numba.prange(order.shape[0]):
        i = order[j]
        a, b, c = np.float64(conics[i, 0]), np.float64(conics[i, 1]), np.float64(conics[i, 2])
        det_q = max(a * c - b * b, 1e-300)
        k = np.sqrt(2.0 * np.log(max(np.float64(opacities[i]) / ALPHA_THRESHOLD, 1.0)))
        k = min(k, RADIUS_SIGMAS) * (1 + 1e-6) + 1e-6
        rx, ry = k * np.sqrt(c / det_q), k * np.sqrt(a / det_q)
        mx, my = np.float64(means2d[i, 0]), np.float64(means2d[i, 1])
        boxes[j, 0] = min(max(np.ceil(mx - rx - 0.5), 0.0), width)
        boxes[j, 1] = min(max(np.floor(mx + rx - 0.5), -1.0), width - 1)
        boxes[j, 2] = min(max(np.ceil(my - ry - 0.5), 0.0), height)
        boxes[j, 3] = min(max(np.floor(my + ry - 0.5), -1.0), height - 1)


@numba.njit(cache=True, nogil=True)
def _bin_entries(boxes, order, n_per_camera, tiles_x, tiles_y, n_tiles):
    """Entries of the Gaussians `order` [V] (front to back) with non-empty boxes [V, 4], by tile.

    Returns (sources [S], gaussian, x0, y0, box_w, box_h [E], tile_start, tile_count [n_tiles]) as in TilePlan.
    """
    tile_count = np.zeros(n_tiles, dtype=np.int64)
    n_sources = 0
    for j in range(order.shape[0]):
        x0, x1, y0, y1 = boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]
        if x0 > x1 or y0 > y1:
            continue
        n_sources += 1
        base = (order[j] // n_per_camera) * tiles_x * tiles_y
        for ty in range(y0 // TILE, y1 // TILE + 1):
            for tx in range(x0 // TILE, x1 // TILE + 1):
                tile_count[base + ty * tiles_x + tx] += 1
    tile_start = np.zeros(n_tiles, dtype=np.int64)
    for t in range(1, n_tiles):
        tile_start[t] = tile_start[t - 1] + tile_count[t - 1]
    n_entries = tile_start[n_tiles - 1] + tile_count[n_tiles - 1] if n_tiles > 0 else 0
    sources = np.empty(n_sources, dtype=np.int64)
    gaussian, ex0, ey0 = (
        np.empty(n_entries, np.int64),
        np.empty(n_entries, np.int64),
        np.empty(n_entries, np.int64),
    )
    box_w, box_h = np.empty(n_entries, np.int64), np.empty(n_entries, np.int64)
    fill = tile_start.copy()
    s = 0
    for j in range(order.shape[0]):
        x0, x1, y0, y1 = boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]
        if x0 > x1 or y0 > y1:
            continue
        sources[s] = order[j]
        base = (order[j] // n_per_camera) * tiles_x * tiles_y
        for ty in range(y0 // TILE, y1 // TILE + 1):
            for tx in range(x0 // TILE, x1 // TILE + 1):
                t = base + ty * tiles_x + tx
                e = fill[t]
                fill[t] += 1
                lo_x, lo_y = max(x0, tx * TILE), max(y0, ty * TILE)
                gaussian[e] = s
                ex0[e], ey0[e] = lo_x - tx * TILE, lo_y - ty * TILE
                box_w[e] = min(x1, tx * TILE + TILE - 1) - lo_x + 1
                box_h[e] = min(y1, ty * TILE + TILE - 1) - lo_y + 1
        s += 1
    return sources, gaussian, ex0, ey0, box_w, box_h, tile_start, tile_count


@torch.no_grad()
def plan_tiles_numba(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    valid: torch.Tensor,
    n_per_camera: int,
    width: int,
    height: int,
) -> TilePlan:
    """`tiles.plan_tiles` (same arguments and plan): means2d [G, 2], conics [G, 3], opacities [G], depths [G],
    valid [G] bool, with G = cameras * n_per_camera."""
    n_cameras = means2d.shape[0] // n_per_camera
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    n_tiles = n_cameras * tiles_x * tiles_y
    idx = torch.nonzero(valid).squeeze(1)
    order = idx.index_select(0, torch.argsort(sortable_bits(depths.index_select(0, idx)), stable=True))
    order_np = order.numpy()
    match_torch_threads()
    boxes = np.empty((order_np.shape[0], 4), dtype=np.int64)
    _pixel_boxes(
        means2d.detach().contiguous().numpy(), conics.detach().contiguous().numpy(),
        opacities.detach().contiguous().numpy(), order_np, width, height, boxes,
    )  # fmt: skip
    planned = _bin_entries(boxes, order_np, n_per_camera, tiles_x, tiles_y, n_tiles)
    sources, gaussian, x0, y0, box_w, box_h, tile_start, tile_count = (torch.from_numpy(a) for a in planned)
    return TilePlan(
        sources=sources,
        gaussian=gaussian,
        x0=x0,
        y0=y0,
        box_w=box_w,
        box_h=box_h,
        tile_start=tile_start,
        tile_count=tile_count,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        n_tiles=n_tiles,
        pad_mask=padding_mask(n_cameras, tiles_x, tiles_y, width, height),
    )
