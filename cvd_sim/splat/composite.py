"""Front-to-back alpha compositing of 2D Gaussians in plain torch, with a hand-written backward.

Tiles are processed in passes of up to `PER_PASS` Gaussians each (front to back). A pass enumerates the
(Gaussian, pixel) candidates of each Gaussian's α ≥ 1/255 box row by row, only over the run of columns where
the row crosses the α ≥ 1/255 ellipse (vectorised over all tiles), tests σ ≥ 0 and α ≥ 1/255 per pixel,
then walks the pass's depth ranks in order, updating T = Π(1 - α) per pixel exactly as gsplat's per-pixel
loop does, for all tiles at once (no sort). A pixel stops before the first Gaussian that would take T to
≤ 1e-4; entries and tiles whose pixels have all stopped are skipped by later passes. Arrays are 1D
(structure of arrays) with int64 indices: 1D `index_select`/`scatter_add_` are many times faster than row
gathers on the CPU. The pairs of a tile entry are contiguous, so per-Gaussian values are gathered once per
entry, and the backward sums its per-pair gradient terms per entry with one `segment_reduce` per pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvd_sim.splat.projection import ALPHA_THRESHOLD
from cvd_sim.splat.tiles import TILE, TILE_PIXELS, TilePlan, image_to_tiles, tiles_to_image

MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
PER_PASS = 32  # Gaussians per tile per pass
TILES_PER_CHUNK = 1024  # bounds a pass's candidates by TILES_PER_CHUNK * PER_PASS * 256
CACHE_PAIRS = 40_000_000  # keep forward pairs for the backward up to this many, else recompute them
SIGMA_SLACK = 1e-2  # row runs cover σ ≤ ln(255·o) + this (float32 rounding of σ is ~1e-6)
COLUMN_SLACK = 1e-2  # and this many pixels more on each side


@dataclass
class Pass:
    """Contributing (Gaussian, pixel) pairs of one pass over a chunk of tiles, in (rank, tile, pixel) order.

    The pairs of one tile entry are contiguous: entry_gaussian [E] int64 index into the plan's splatted
    Gaussians of each of the pass's entries, entry_pairs [E] int64 its number of pairs (segment lengths),
    pair_entry [P] int64 (non-decreasing) entry of each pair. pixel [P] int64 chunk-local tile-major pixel
    (int64: the CPU's fastest index_select/scatter_add_ index); rank_offsets: pairs of depth rank r in this
    pass are [rank_offsets[r], rank_offsets[r + 1]) and have distinct pixels; dx, dy [P] = mean - pixel
    centre; vis [P] = exp(-σ); alpha [P]; trans [P] = transmittance in front of the pair.
    """

    entry_gaussian: torch.Tensor
    entry_pairs: torch.Tensor
    pair_entry: torch.Tensor
    pixel: torch.Tensor
    rank_offsets: list[int]
    dx: torch.Tensor
    dy: torch.Tensor
    vis: torch.Tensor
    alpha: torch.Tensor
    trans: torch.Tensor


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
    coefs = torch.stack([b * inv_2a, (b * b - 4 * a * c) * inv_2a * inv_2a, sigma_max / a])
    return coefs.index_select(1, row_entry).unbind(0)


def chunk_passes(
    plan: TilePlan,
    tile_begin: int,
    tile_end: int,
    means2d: torch.Tensor,
    conics: torch.Tensor,
    opacities: torch.Tensor,
) -> tuple[list[Pass], torch.Tensor]:
    """All contributing pairs of tiles [tile_begin, tile_end) and the final transmittance [n_pixels].

    means2d [2, V], conics [3, V] (a, b, c rows), opacities [V]: 2D parameters of the plan's splatted
    Gaussians (`plan.sources` order).
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
    # transmittance per pixel, negated once the pixel has stopped (padding pixels start stopped)
    pad = plan.pad_mask[tile_begin:tile_end].reshape(-1)
    trans_px = 1.0 - 2.0 * pad.to(dtype)
    n_pad = int(pad.sum())
    rank_grid = torch.arange(PER_PASS)[:, None]
    passes: list[Pass] = []
    first = 0
    while True:
        remaining = count - first
        done = trans_px < 0
        tiles = torch.nonzero((remaining > 0) & ~done.view(n_t, TILE_PIXELS).all(1)).squeeze(1)
        if tiles.numel() == 0:
            break
        # entries of this pass in (rank, tile) order, so each rank touches a pixel at most once
        rank, slot = torch.nonzero(rank_grid < remaining.index_select(0, tiles).clamp_max(PER_PASS)).unbind(1)
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
        r_a, r_b, r_o = e_a.index_select(0, re), e_b.index_select(0, re), e_o.index_select(0, re)
        r_cdd = e_c.index_select(0, re) * r_dy * r_dy  # c·dy·dy as the per-pixel formula rounds it

        # candidates: the pixels of each row's span, in (rank, tile, row, column) order
        cr = torch.repeat_interleave(span)
        col_i = torch.arange(cr.numel()) - (torch.cumsum(span, 0) - span - col_lo).index_select(0, cr)
        col = col_i.to(dtype)
        pixel = r_pix0.index_select(0, cr) + col_i
        dx = r_dx0.index_select(0, cr) - col
        dy = r_dy.index_select(0, cr)
        sigma = r_a.index_select(0, cr) * dx * dx + r_cdd.index_select(0, cr)
        sigma += r_b.index_select(0, cr) * dx * dy
        vis = torch.exp(-sigma)
        alpha = torch.clamp_max(r_o.index_select(0, cr) * vis, MAX_ALPHA)
        valid = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        one_minus = 1.0 - alpha.masked_fill(~valid, 0.0)  # skipped pairs leave T unchanged
        per_rank = torch.zeros(PER_PASS, dtype=torch.long).index_add_(0, rank.index_select(0, re), span)
        offsets = [0, *torch.cumsum(per_rank, 0).tolist()]

        # front to back, one depth rank at a time (gsplat's per-pixel loop, run for all tiles at once);
        # a pixel stops (T is stored negated) before the pair that would take T to <= 1e-4
        trans = torch.empty_like(alpha)
        for r in range(PER_PASS):
            lo, hi = offsets[r], offsets[r + 1]
            if lo == hi:
                continue
            pix = pixel[lo:hi]
            t_front = torch.index_select(trans_px, 0, pix, out=trans[lo:hi])
            t_back = t_front * one_minus[lo:hi]
            trans_px.scatter_(0, pix, torch.where(t_back > TRANSMITTANCE_STOP, t_back, -t_front.abs()))
        idx = torch.nonzero((trans * one_minus > TRANSMITTANCE_STOP) & valid).squeeze(1)
        if idx.numel() > 0:  # (segment sums need at least one entry)
            pair_entry = re.index_select(0, cr.index_select(0, idx))
            passes.append(
                Pass(
                    entry_gaussian=g,
                    entry_pairs=torch.bincount(pair_entry, minlength=g.numel()),
                    pair_entry=pair_entry,
                    pixel=pixel.index_select(0, idx),
                    rank_offsets=torch.searchsorted(idx, torch.tensor(offsets)).tolist(),
                    dx=dx.index_select(0, idx),
                    dy=dy.index_select(0, idx),
                    vis=vis.index_select(0, idx),
                    alpha=alpha.index_select(0, idx),
                    trans=trans.index_select(0, idx),
                )
            )
        first += PER_PASS
    return passes, trans_px.abs()


def _chunks(plan: TilePlan) -> list[tuple[int, int]]:
    return [(t, min(t + TILES_PER_CHUNK, plan.n_tiles)) for t in range(0, plan.n_tiles, TILES_PER_CHUNK)]


def _backward_chunk(
    passes: list[Pass],
    colors: torch.Tensor,
    final_trans: torch.Tensor,
    grad_color: torch.Tensor,
    grad_alpha: torch.Tensor,
    grads: torch.Tensor,
) -> None:
    """Accumulate the gradients of one chunk into `grads` [D + 6, V].

    colors [D, V]; final_trans [P_chunk], grad_color [D, P_chunk], grad_alpha [P_chunk] are the chunk's
    pixels. Rows of grads: colors (D), opacities, then per Gaussian -Σ(dx², dx·dy, dy²)·dσ (3, for the
    conics) and -Σ dx·dσ, -Σ dy·dσ (2, for means2d), with dσ = dL/dσ (signs and the ½ of σ's a and c terms
    are applied by the caller). Per-pair terms are summed per entry (contiguous segments), then per Gaussian.
    """
    n_colors = colors.shape[0]
    behind_px = torch.zeros_like(final_trans)  # Σ w·(grad·c) of the pairs behind, per pixel
    alpha_term = final_trans * grad_alpha  # d loss / d α_i picks up T_final·grad_alpha / (1 - α_i)
    for ps in reversed(passes):
        pix, alpha, trans = ps.pixel, ps.alpha, ps.trans
        terms = alpha.new_empty(grads.shape[0], alpha.numel())  # per-pair terms, rows as in grads
        weight = alpha * trans
        colors_e = colors.index_select(1, ps.entry_gaussian)
        gc = torch.zeros_like(alpha)
        for d in range(n_colors):
            g_pix = grad_color[d].index_select(0, pix)
            torch.mul(weight, g_pix, out=terms[d])
            gc.addcmul_(g_pix, colors_e[d].index_select(0, ps.pair_entry))
        wgc = weight * gc
        behind = torch.empty_like(wgc)
        for r in reversed(range(PER_PASS)):
            lo, hi = ps.rank_offsets[r], ps.rank_offsets[r + 1]
            if lo == hi:
                continue
            p = pix[lo:hi]
            acc = torch.index_select(behind_px, 0, p, out=behind[lo:hi])
            behind_px.scatter_(0, p, acc + wgc[lo:hi])

        d_alpha = trans * gc + (alpha_term.index_select(0, pix) - behind) / (1.0 - alpha)
        d_alpha.masked_fill_(alpha >= MAX_ALPHA, 0.0)  # clamped: α = 0.999 does not move
        torch.mul(d_alpha, ps.vis, out=terms[n_colors])
        d_sigma_neg = d_alpha * alpha  # -dL/dσ; the signs and ½ factors are applied once per Gaussian
        dx, dy = ps.dx, ps.dy
        dxs = torch.mul(dx, d_sigma_neg, out=terms[n_colors + 4])  # dσ/dmean = Q·d, Q constant per Gaussian
        dys = torch.mul(dy, d_sigma_neg, out=terms[n_colors + 5])
        torch.mul(dx, dxs, out=terms[n_colors + 1])
        torch.mul(dx, dys, out=terms[n_colors + 2])
        torch.mul(dy, dys, out=terms[n_colors + 3])
        lengths = ps.entry_pairs.expand(terms.shape[0], -1)
        grads.index_add_(1, ps.entry_gaussian, torch.segment_reduce(terms, "sum", lengths=lengths, axis=1))


class RasterizeToPixels(torch.autograd.Function):
    """(means2d [G, 2], conics [G, 3], colors [G, D], opacities [G]) -> (colour [C, H, W, D], alpha [C, H, W, 1]).

    G = C * N flat (camera, Gaussian) entries laid out by `plan`; colour excludes any background.
    """

    @staticmethod
    def forward(
        ctx, means2d, conics, colors, opacities, plan: TilePlan, n_cameras: int, width: int, height: int
    ):
        # work on the splatted Gaussians only, as [K, V] rows: compact arrays keep scatters in cache
        src = plan.sources
        means_v = means2d.index_select(0, src).t().contiguous()
        conics_v = conics.index_select(0, src).t().contiguous()
        colors_v = colors.index_select(0, src).t().contiguous()
        opacities_v = opacities.index_select(0, src)
        n_pix = plan.n_tiles * TILE_PIXELS
        color = torch.zeros(colors.shape[1], n_pix, dtype=colors.dtype)
        final_trans = torch.ones(n_pix, dtype=colors.dtype)
        cached: list[list[Pass]] | None = []
        n_cached = 0
        for t0, t1 in _chunks(plan):
            passes, trans_px = chunk_passes(plan, t0, t1, means_v, conics_v, opacities_v)
            p0 = t0 * TILE_PIXELS
            out = color[:, p0 : t1 * TILE_PIXELS]
            for ps in passes:
                weight = ps.alpha * ps.trans
                colors_e = colors_v.index_select(1, ps.entry_gaussian)
                for d in range(colors.shape[1]):
                    out[d].scatter_add_(0, ps.pixel, weight * colors_e[d].index_select(0, ps.pair_entry))
            final_trans[p0 : t1 * TILE_PIXELS] = trans_px
            if cached is not None:
                n_cached += sum(ps.pixel.numel() for ps in passes)
                cached = [*cached, passes] if n_cached <= CACHE_PAIRS else None
        ctx.save_for_backward(means_v, conics_v, colors_v, opacities_v, final_trans)
        ctx.plan, ctx.cached, ctx.n_flat = plan, cached, means2d.shape[0]
        tiled = torch.cat([color, (1.0 - final_trans).unsqueeze(0)], dim=0).t()
        img = tiles_to_image(tiled, n_cameras, plan, height, width)
        return img[..., :-1], img[..., -1:]

    @staticmethod
    def backward(ctx, grad_color, grad_alpha):
        means_v, conics_v, colors_v, opacities_v, final_trans = ctx.saved_tensors
        plan = ctx.plan
        grad_color = image_to_tiles(grad_color, plan).t().contiguous()
        grad_alpha = image_to_tiles(grad_alpha, plan).squeeze(1).contiguous()
        n_colors = colors_v.shape[0]
        grads = colors_v.new_zeros(n_colors + 6, colors_v.shape[1])  # rows as in _backward_chunk
        for i, (t0, t1) in enumerate(_chunks(plan)):
            if ctx.cached is not None:
                passes = ctx.cached[i]
            else:
                passes = chunk_passes(plan, t0, t1, means_v, conics_v, opacities_v)[0]
            sl = slice(t0 * TILE_PIXELS, t1 * TILE_PIXELS)
            _backward_chunk(passes, colors_v, final_trans[sl], grad_color[:, sl], grad_alpha[sl], grads)
        con_a, con_b, con_c = conics_v
        grad_colors, grad_opacities = grads[:n_colors], grads[n_colors]
        sum_dxs, sum_dys = grads[n_colors + 4], grads[n_colors + 5]
        grad_means = -torch.stack(
            [con_a * sum_dxs + con_b * sum_dys, con_b * sum_dxs + con_c * sum_dys], dim=1
        )
        grad_conics = (
            grads[n_colors + 1 : n_colors + 4]
            * torch.tensor([-0.5, -1.0, -0.5], dtype=conics_v.dtype)[:, None]
        )

        def full(compact: torch.Tensor) -> torch.Tensor:  # [V, ...] -> [G, ...], zero where not splatted
            return compact.new_zeros(ctx.n_flat, *compact.shape[1:]).index_copy_(0, plan.sources, compact)

        return (
            full(grad_means),
            full(grad_conics.t()),
            full(grad_colors.t()),
            full(grad_opacities),
            None,
            None,
            None,
            None,
        )
