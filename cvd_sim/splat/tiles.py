"""Binning of projected 2D Gaussians into 16x16 pixel tiles, front to back, in memory-bounded chunks of tiles."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvd_sim.splat.projection import ALPHA_THRESHOLD, RADIUS_SIGMAS

TILE = 16
TILE_PIXELS = TILE * TILE


@dataclass
class TilePlan:
    """Tile entries sorted by (tile, depth); one entry = one Gaussian's α ≥ 1/255 box clipped to one tile.

    sources [V] flat [C*N] index of each splatted Gaussian (valid, non-empty box), front to back per camera;
    gaussian [E] index into `sources`; x0, y0 [E] first pixel inside the tile (0..15);
    box_w, box_h [E] box size inside the tile; tile_start, tile_count [n_tiles] entries of each tile;
    tiles_x, tiles_y per camera; n_tiles = cameras * tiles_y * tiles_x; pad_mask [n_tiles, 256] marks
    pixels outside the image.
    """

    sources: torch.Tensor
    gaussian: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    box_w: torch.Tensor
    box_h: torch.Tensor
    tile_start: torch.Tensor
    tile_count: torch.Tensor
    tiles_x: int
    tiles_y: int
    n_tiles: int
    pad_mask: torch.Tensor


def pixel_boxes(
    means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, width: int, height: int
) -> torch.Tensor:
    """Inclusive integer pixel boxes [G, 4] = (x0, x1, y0, y1) holding every pixel centre where α ≥ 1/255.

    The level set o·exp(-½ dᵀQd) = 1/255 is an ellipse whose bounding box has half-widths
    k·sqrt(Σxx), k·sqrt(Σyy) with k = sqrt(2 ln(255·o)) (capped at 3.33, gsplat's extent).
    """
    a, b, c = conics.double().unbind(-1)
    det_q = (a * c - b * b).clamp_min(1e-300)
    k = torch.sqrt(2.0 * torch.log((opacities.double() / ALPHA_THRESHOLD).clamp_min(1.0)))
    k = k.clamp_max(RADIUS_SIGMAS) * (1 + 1e-6) + 1e-6  # never lose a boundary pixel to rounding
    rx = k * torch.sqrt(c / det_q)
    ry = k * torch.sqrt(a / det_q)
    mx, my = means2d.double().unbind(-1)
    x0 = torch.ceil(mx - rx - 0.5).clamp(0, width)
    x1 = torch.floor(mx + rx - 0.5).clamp(-1, width - 1)
    y0 = torch.ceil(my - ry - 0.5).clamp(0, height)
    y1 = torch.floor(my + ry - 0.5).clamp(-1, height - 1)
    return torch.stack([x0, x1, y0, y1], dim=-1).long()


def sortable_bits(x: torch.Tensor) -> torch.Tensor:
    """Integers [...] that sort like the float32/float64 values x [...] (no NaNs; -0 and +0 tie).

    A stable integer sort on the CPU is several times faster than a stable float sort.
    """
    int_type = {torch.float32: torch.int32, torch.float64: torch.int64}.get(x.dtype)
    if int_type is None:
        return x
    bits = (x + 0.0).view(int_type)  # + 0.0 turns -0 into +0
    magnitude = torch.iinfo(int_type).max
    return bits ^ ((bits >> (torch.iinfo(int_type).bits - 1)) & magnitude)  # negatives: reverse the order


def padding_mask(n_cameras: int, tiles_x: int, tiles_y: int, width: int, height: int) -> torch.Tensor:
    """[n_cameras * tiles_y * tiles_x, 256] bool: the tile pixels outside the width x height image."""
    pix_y = torch.arange(tiles_y * TILE).view(tiles_y, 1, TILE, 1)
    pix_x = torch.arange(tiles_x * TILE).view(1, tiles_x, 1, TILE)
    pad = ((pix_y >= height) | (pix_x >= width)).reshape(tiles_y * tiles_x, TILE_PIXELS)
    return pad.repeat(n_cameras, 1)


def gather_columns(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows idx [V] of x [G, K] as columns [K, V] (one 1D gather per column: faster than a row gather)."""
    return torch.stack([x[:, k].index_select(0, idx) for k in range(x.shape[1])])


@torch.no_grad()
def plan_tiles(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    valid: torch.Tensor,
    n_per_camera: int,
    width: int,
    height: int,
) -> TilePlan:
    """Sort valid Gaussians front to back per camera and bin them into tiles.

    means2d [G, 2], conics [G, 3], opacities [G], depths [G], valid [G] bool, with G = cameras * n_per_camera.
    """
    n_cameras = means2d.shape[0] // n_per_camera
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    n_tiles = n_cameras * tiles_x * tiles_y
    idx = torch.nonzero(valid).squeeze(1)  # index_select below: many times faster than [] indexing on the CPU
    depth_keys = sortable_bits(depths.index_select(0, idx))
    idx = idx.index_select(0, torch.argsort(depth_keys, stable=True))  # front to back
    boxes = pixel_boxes(
        gather_columns(means2d, idx).t(),
        gather_columns(conics, idx).t(),
        opacities.index_select(0, idx),
        width,
        height,
    )
    nonempty = torch.nonzero((boxes[:, 0] <= boxes[:, 1]) & (boxes[:, 2] <= boxes[:, 3])).squeeze(1)
    idx = idx.index_select(0, nonempty)
    x0, x1, y0, y1 = gather_columns(boxes, nonempty)
    tx0, tx1, ty0, ty1 = x0 // TILE, x1 // TILE, y0 // TILE, y1 // TILE
    span_x = tx1 - tx0 + 1
    per = span_x * (ty1 - ty0 + 1)
    src = torch.repeat_interleave(per)
    k = torch.arange(src.numel()) - (torch.cumsum(per, 0) - per).index_select(0, src)
    span_src = span_x.index_select(0, src)
    tx = tx0.index_select(0, src) + k % span_src
    ty = ty0.index_select(0, src) + torch.div(k, span_src, rounding_mode="floor")
    tile = (idx.index_select(0, src) // n_per_camera) * (tiles_x * tiles_y) + ty * tiles_x + tx
    order = torch.argsort(tile.to(torch.int32), stable=True)  # stable: front to back within a tile
    src, tx, ty, tile = (t.index_select(0, order) for t in (src, tx, ty, tile))
    ex0 = torch.maximum(x0.index_select(0, src), tx * TILE)
    ex1 = torch.minimum(x1.index_select(0, src), tx * TILE + TILE - 1)
    ey0 = torch.maximum(y0.index_select(0, src), ty * TILE)
    ey1 = torch.minimum(y1.index_select(0, src), ty * TILE + TILE - 1)
    tile_count = torch.bincount(tile, minlength=n_tiles)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return TilePlan(
        sources=idx,
        gaussian=src,
        x0=ex0 - tx * TILE,
        y0=ey0 - ty * TILE,
        box_w=ex1 - ex0 + 1,
        box_h=ey1 - ey0 + 1,
        tile_start=tile_start,
        tile_count=tile_count,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        n_tiles=n_tiles,
        pad_mask=padding_mask(n_cameras, tiles_x, tiles_y, width, height),
    )


def tiles_to_image(
    tiled: torch.Tensor, n_cameras: int, plan: TilePlan, height: int, width: int
) -> torch.Tensor:
    """[n_tiles * 256, D] tile-major pixels -> [C, H, W, D] images."""
    d = tiled.shape[-1]
    img = tiled.view(n_cameras, plan.tiles_y, plan.tiles_x, TILE, TILE, d).permute(0, 1, 3, 2, 4, 5)
    return img.reshape(n_cameras, plan.tiles_y * TILE, plan.tiles_x * TILE, d)[:, :height, :width]


def image_to_tiles(img: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """[C, H, W, D] images -> [n_tiles * 256, D] tile-major pixels (zero padded)."""
    c, h, w, d = img.shape
    padded = img.new_zeros(c, plan.tiles_y * TILE, plan.tiles_x * TILE, d)
    padded[:, :h, :w] = img
    tiled = padded.view(c, plan.tiles_y, TILE, plan.tiles_x, TILE, d).permute(0, 1, 3, 2, 4, 5)
    return tiled.reshape(-1, d)
