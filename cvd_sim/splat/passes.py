"""Front-to-back walk over the (Gaussian, pixel) candidates of a chunk of tiles, in passes of depth ranks.

Tiles are processed in passes of up to `per_pass` Gaussians each (front to back). A pass enumerates the
(Gaussian, pixel) candidates of each Gaussian's α ≥ 1/255 box row by row, only over the run of columns where
the row crosses the α ≥ 1/255 ellipse (vectorised over all tiles), tests σ ≥ 0 and α ≥ 1/255 per pixel,
then walks the pass's depth ranks in order, updating T = Π(1 - α) per pixel exactly as gsplat's per-pixel
loop does, for all tiles at once (no sort). A pixel stops before the first Gaussian that would take T to
≤ 1e-4; entries and tiles whose pixels have all stopped are skipped by later passes. The walk keeps
multiplying T past the stop (so a step is one gather, one product and one scatter): T only falls, so a
pair contributes iff the T behind it is still > 1e-4, and the stopping pair is the one whose T in front
is > 1e-4 and behind ≤ 1e-4; its T in front is the pixel's final transmittance. Arrays are 1D
(structure of arrays) with int64 indices: 1D `index_select`/`scatter_` are many times faster than row
gathers on the CPU. The candidates of a tile entry are contiguous.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cvd_sim.splat.projection import ALPHA_THRESHOLD
from cvd_sim.splat.tiles import TILE, TILE_PIXELS, TilePlan

MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
SIGMA_SLACK = 1e-2  # row runs cover σ ≤ ln(255·o) + this (float32 rounding of σ is ~1e-6)
COLUMN_SLACK = 1e-2  # and this many pixels more on each side


@dataclass
class Candidates:
    """The (Gaussian, pixel) candidates of one pass, in (rank, tile, row, column) order, after the walk.

    entry_gaussian [E] int64 index into the plan's splatted Gaussians of each of the pass's entries;
    entry [K] (int64, non-decreasing) entry of each candidate; pixel [K] int64 chunk-local
    tile-major pixel; rank_offsets: candidates of depth rank r are [rank_offsets[r], rank_offsets[r + 1]) and
    have distinct pixels; dx, dy [K] = mean - pixel centre; vis [K] = exp(-σ); alpha [K] = min(0.999, o·vis);
    used [K] bool = σ ≥ 0 and α ≥ 1/255; alpha_used [K] = alpha where used, else 0;
    trans [K] = running product of (1 - alpha_used) in front of the candidate (equal to the transmittance
    until the pixel stops, below 1e-4 after); trans_behind [K] = trans·(1 - alpha_used). The candidate
    contributes iff trans_behind > 1e-4 and used.
    """

    entry_gaussian: torch.Tensor
    entry: torch.Tensor
    pixel: torch.Tensor
    rank_offsets: list[int]
    dx: torch.Tensor
    dy: torch.Tensor
    vis: torch.Tensor
    alpha: torch.Tensor
    used: torch.Tensor
    alpha_used: torch.Tensor
    trans: torch.Tensor
    trans_behind: torch.Tensor


def _live_entries(plan: TilePlan, entry, tile, done: torch.Tensor, n_t: int) -> torch.Tensor:
    """Indices of entries whose box still holds a running pixel (summed-area table of running pixels)."""
    running = (~done).view(n_t, TILE, TILE).to(torch.int32)
    sat = torch.nn.functional.pad(running.cumsum(1).cumsum(2), (1, 0, 1, 0)).view(-1)
    side = TILE + 1
    bx0, by0 = plan.x0.index_select(0, entry), plan.y0.index_select(0, entry)
    bx1, by1 = bx0 + plan.box_w.index_select(0, entry), by0 + plan.box_h.index_select(0, entry)
    base = tile * side * side
    inside = (
        sat.index_select(0, base + by1 * side + bx1)
        - sat.index_select(0, base + by0 * side + bx1)
        - sat.index_select(0, base + by1 * side + bx0)
        + sat.index_select(0, base + by0 * side + bx0)
    )
    return torch.nonzero(inside > 0).squeeze(1)


def _row_runs(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, opacity: torch.Tensor, row_entry: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row coefficients of the columns where σ = a·dx² + b·dx·dy + c·dy² ≤ ln(255·o), i.e. α ≥ 1/255.

    a, b, c, opacity [E] per entry; row_entry [R] entry of each row item. Returns (shift, k1, k2) [R]: on a
    row at offset dy, the run is dx0 - dx ∈ centre ± half with centre = dx0 + shift·dy (dx0 = mean x - first
    column centre) and half = sqrt(k1·dy² + k2). σ's bound is raised by SIGMA_SLACK so that rounding never
    drops a pixel; the exact per-pixel test follows, so the output equals testing every pixel of the box.
    """
    inv_2a = 0.5 / a
    sigma_max = torch.log(opacity / ALPHA_THRESHOLD) + SIGMA_SLACK
    coefs = (b * inv_2a, (b * b - 4 * a * c) * inv_2a * inv_2a, sigma_max / a)
    return tuple(coef.index_select(0, row_entry) for coef in coefs)  # 1D gathers: faster than one 2D


def walk_passes(
    plan: TilePlan,
    tile_begin: int,
    tile_end: int,
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
    final_trans: torch.Tensor,
    per_pass: int,
) -> Iterator[Candidates]:
    """Walk tiles [tile_begin, tile_end) front to back, `per_pass` depth ranks at a time; yield each pass.

    means2d [2, V], conics [3, V] (a, b, c rows), opacities [V]: 2D parameters of the plan's splatted
    Gaussians (`plan.sources` order). final_trans [n_px] (the chunk's pixels, tile-major) receives the
    final transmittance per pixel once the walk is over (1 on padding pixels).
    """
    dtype = means2d.dtype
    n_t = tile_end - tile_begin
    count = plan.tile_count[tile_begin:tile_end]
    start = plan.tile_start[tile_begin:tile_end]
    tile_global = torch.arange(tile_begin, tile_end)
    origin_x = ((tile_global % plan.tiles_x) * TILE).to(dtype) + 0.5
    origin_y = ((torch.div(tile_global, plan.tiles_x, rounding_mode="floor") % plan.tiles_y) * TILE).to(
        dtype
    ) + 0.5
    pad = plan.pad_mask[tile_begin:tile_end].reshape(-1)
    n_pad = int(pad.sum())
    trans_px = 1.0 - pad.to(dtype)  # running product of (1 - α) per pixel; padding starts stopped
    final_trans.fill_(1.0)  # stopped pixels get theirs as they stop, running ones at the end
    rank_grid = torch.arange(per_pass)[:, None]
    first = 0
    while True:
        remaining = count - first
        done = trans_px <= TRANSMITTANCE_STOP
        trans_px.masked_fill_(done, 0.0)  # T of stopped pixels need not fall further (into denormals)
        tiles = torch.nonzero((remaining > 0) & ~done.view(n_t, TILE_PIXELS).all(1)).squeeze(1)
        if tiles.numel() == 0:
            final_trans.copy_(torch.where(done, final_trans, trans_px))
            return
        # entries of this pass in (rank, tile) order, so each rank touches a pixel at most once
        rank, slot = torch.nonzero(rank_grid < remaining.index_select(0, tiles).clamp_max(per_pass)).unbind(1)
        tile = tiles.index_select(0, slot)
        entry = start.index_select(0, tile) + first + rank
        if int(done.sum()) > n_pad:  # drop entries whose box has only stopped pixels
            live = _live_entries(plan, entry, tile, done, n_t)
            entry, tile, rank = (
                entry.index_select(0, live),
                tile.index_select(0, live),
                rank.index_select(0, live),
            )
        g = plan.gaussian.index_select(0, entry)
        e_x0, e_y0 = plan.x0.index_select(0, entry), plan.y0.index_select(0, entry)
        e_w, e_h = plan.box_w.index_select(0, entry), plan.box_h.index_select(0, entry)
        e_pix0 = tile * TILE_PIXELS + e_y0 * TILE + e_x0  # pixel of the box's first candidate
        e_dx0 = means2d[0].index_select(0, g) - origin_x.index_select(0, tile) - e_x0.to(dtype)
        e_dy0 = means2d[1].index_select(0, g) - origin_y.index_select(0, tile) - e_y0.to(dtype)
        e_a, e_b, e_c = (conics[i].index_select(0, g) for i in range(3))
        e_a, e_c = 0.5 * e_a, 0.5 * e_c
        e_o = opacities.index_select(0, g)

        # one row item per (entry, box row), holding the run of columns that can reach α ≥ 1/255
        re = torch.repeat_interleave(e_h)
        row = torch.arange(re.numel()) - (torch.cumsum(e_h, 0) - e_h).index_select(0, re)
        r_dx0 = e_dx0.index_select(0, re)
        r_dy = e_dy0.index_select(0, re) - row.to(dtype)
        shift, k1, k2 = _row_runs(e_a, e_b, e_c, e_o, re)
        centre = r_dx0 + shift * r_dy
        half = torch.sqrt((k1 * r_dy * r_dy + k2).clamp_min(0)) + COLUMN_SLACK
        col_lo = torch.ceil(centre - half).clamp_min(0).long()
        col_hi = torch.minimum(torch.floor(centre + half).long(), e_w.index_select(0, re) - 1)
        span = (col_hi - col_lo + 1).clamp_min(0)
        r_pix0 = e_pix0.index_select(0, re) + row * TILE
        r_cdd = e_c.index_select(0, re) * r_dy * r_dy  # c·dy·dy as the per-pixel formula rounds it

        # candidates: the pixels of each row's span, in (rank, tile, row, column) order
        cr = torch.repeat_interleave(span)
        ce = re.index_select(0, cr)  # entry of each candidate
        col_i = torch.arange(cr.numel()) - (torch.cumsum(span, 0) - span - col_lo).index_select(0, cr)
        col = col_i.to(dtype)
        pixel = r_pix0.index_select(0, cr) + col_i
        dx = r_dx0.index_select(0, cr) - col
        dy = r_dy.index_select(0, cr)
        sigma = e_a.index_select(0, ce) * dx * dx + r_cdd.index_select(0, cr)
        sigma += e_b.index_select(0, ce) * dx * dy
        vis = torch.exp(-sigma)
        alpha = torch.clamp_max(e_o.index_select(0, ce) * vis, MAX_ALPHA)
        used = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        alpha_used = torch.where(used, alpha, 0.0)
        one_minus = 1.0 - alpha_used  # skipped pairs leave T unchanged
        per_rank = torch.zeros(per_pass, dtype=torch.long).index_add_(0, rank.index_select(0, re), span)
        offsets = [0, *torch.cumsum(per_rank, 0).tolist()]

        # front to back, one depth rank at a time (gsplat's per-pixel loop, run for all tiles at once);
        # a pixel stops before the pair that would take T to <= 1e-4
        trans = torch.empty_like(alpha)
        trans_behind = torch.empty_like(alpha)
        sizes = per_rank.tolist()
        steps = zip(*(t.split(sizes) for t in (pixel, one_minus, trans, trans_behind)))
        for pix, o_m, t_front, t_back in steps:  # views of one rank each
            torch.index_select(trans_px, 0, pix, out=t_front)
            trans_px.scatter_(0, pix, torch.mul(t_front, o_m, out=t_back))
        stop = torch.nonzero((trans_behind <= TRANSMITTANCE_STOP) & (trans > TRANSMITTANCE_STOP)).squeeze(1)
        final_trans.scatter_(0, pixel.index_select(0, stop), trans.index_select(0, stop))
        yield Candidates(g, ce, pixel, offsets, dx, dy, vis, alpha, used, alpha_used, trans, trans_behind)
        first += per_pass
