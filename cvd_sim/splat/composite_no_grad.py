"""Forward-only compositing, for when no gradient is needed: `walk_passes` blended straight into the image (the
plain-torch reference of `composite_numba.composite_numba`).

Gives the same values as `RasterizeToPixels` (bit for bit: the same walk, and each pixel sums the same
products in the same depth order; non-contributing candidates add exact zeros) but keeps nothing for a
backward, so it skips compacting the contributing pairs, and it walks more depth ranks per pass.
"""

from __future__ import annotations

import torch

from cvd_sim.splat.passes import TRANSMITTANCE_STOP, walk_passes
from cvd_sim.splat.tiles import TILE_PIXELS, TilePlan, gather_columns, tiles_to_image

PER_PASS = 64  # Gaussians per tile per pass (nothing is kept between passes)
TILES_PER_CHUNK = 512  # bounds a pass's candidates by TILES_PER_CHUNK * PER_PASS * 256


@torch.no_grad()
def composite_no_grad(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    feats: torch.Tensor,
    opacities: torch.Tensor,
    plan: TilePlan,
    n_cameras: int,
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(means2d [G, 2], conics [G, 3], feats [G, D], opacities [G]) -> (img [C, H, W, D], alpha [C, H, W, 1]).

    G = C * N flat (camera, Gaussian) entries laid out by `plan`; the feature image excludes any background.
    """
    src = plan.sources
    means_v = gather_columns(means2d, src)
    conics_v = gather_columns(conics, src)
    feats_v = gather_columns(feats, src)
    opacities_v = opacities.index_select(0, src)
    n_pix = plan.n_tiles * TILE_PIXELS
    image = torch.zeros(feats.shape[1], n_pix, dtype=feats.dtype)
    final_trans = torch.empty(n_pix, dtype=feats.dtype)
    for t0 in range(0, plan.n_tiles, TILES_PER_CHUNK):
        t1 = min(t0 + TILES_PER_CHUNK, plan.n_tiles)
        p0, p1 = t0 * TILE_PIXELS, t1 * TILE_PIXELS
        out = image[:, p0:p1]
        for cand in walk_passes(plan, t0, t1, means_v, conics_v, opacities_v, final_trans[p0:p1], PER_PASS):
            weight = torch.where(cand.trans_behind > TRANSMITTANCE_STOP, cand.alpha_used * cand.trans, 0.0)
            feats_e = feats_v.index_select(1, cand.entry_gaussian)
            for d in range(feats_v.shape[0]):
                out[d].scatter_add_(0, cand.pixel, weight * feats_e[d].index_select(0, cand.entry))
    tiled = torch.cat([image, (1.0 - final_trans).unsqueeze(0)], dim=0).t()
    img = tiles_to_image(tiled, n_cameras, plan, height, width)
    return img[..., :-1], img[..., -1:]
