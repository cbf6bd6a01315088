"""Front-to-back alpha compositing of 2D Gaussians in plain torch, with a hand-written backward: the reference
that `composite_numba.RasterizeToPixelsNumba` (what `rasterize` runs on the CPU) is tested against.

The forward walks the tiles with `walk_passes` and keeps each pass's contributing (Gaussian, pixel) pairs for
the backward (or recomputes them there when there are too many). The pairs of a tile entry are contiguous, so
per-Gaussian values are gathered once per entry, and the backward sums its per-pair gradient terms per entry
with one `segment_reduce` per pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvd_sim.splat.passes import MAX_ALPHA, TRANSMITTANCE_STOP, walk_passes
from cvd_sim.splat.tiles import TILE_PIXELS, TilePlan, gather_columns, image_to_tiles, tiles_to_image

PER_PASS = 32  # Gaussians per tile per pass
TILES_PER_CHUNK = 1024  # bounds a pass's candidates by TILES_PER_CHUNK * PER_PASS * 256
CACHE_PAIRS = 40_000_000  # keep forward pairs for the backward up to this many, else recompute them


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
    final_trans = means2d.new_empty((tile_end - tile_begin) * TILE_PIXELS)
    passes: list[Pass] = []
    for cand in walk_passes(plan, tile_begin, tile_end, means2d, conics, opacities, final_trans, PER_PASS):
        idx = torch.nonzero((cand.trans_behind > TRANSMITTANCE_STOP) & cand.used).squeeze(1)
        if idx.numel() == 0:  # (segment sums need at least one entry)
            continue
        pair_entry = cand.entry.index_select(0, idx)
        passes.append(
            Pass(
                entry_gaussian=cand.entry_gaussian,
                entry_pairs=torch.bincount(pair_entry, minlength=cand.entry_gaussian.numel()),
                pair_entry=pair_entry,
                pixel=cand.pixel.index_select(0, idx),
                rank_offsets=torch.searchsorted(idx, torch.tensor(cand.rank_offsets)).tolist(),
                dx=cand.dx.index_select(0, idx),
                dy=cand.dy.index_select(0, idx),
                vis=cand.vis.index_select(0, idx),
                alpha=cand.alpha.index_select(0, idx),
                trans=cand.trans.index_select(0, idx),
            )
        )
    return passes, final_trans


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
        for r in reversed(range(len(ps.rank_offsets) - 1)):
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
        means_v = gather_columns(means2d, src)
        conics_v = gather_columns(conics, src)
        colors_v = gather_columns(colors, src)
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
