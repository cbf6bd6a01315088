"""Front-to-back alpha compositing as compiled CPU kernels (numba): gsplat's per-pixel loops, one tile per task.

The torch walk (`RasterizeToPixels`, `composite_no_grad`) is bound by per-op dispatch on the CPU: a pass is
dozens of small tensor ops. These kernels run the loops that gsplat's CUDA kernels run per pixel, over each
tile entry's α ≥ 1/255 box, with the tiles spread over threads:
- forward: front to back; each pixel keeps T = Π(1 - α) and stops before the Gaussian that would take T to
  ≤ 1e-4. It records the entry it stopped at, so the backward knows which pairs contributed.
- backward: back to front from the final T, recovering T in front of each pair as T_behind / (1 - α) (as
  gsplat does), with per-entry gradient sums. Entries are unique per tile, so tiles never write the same
  row, and the per-Gaussian sums are one `index_add_` after the kernel (deterministic).
The torch versions are the plain-torch references: the tests hold them to float rounding.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from cvd_sim.splat.numba_threads import match_torch_threads
from cvd_sim.splat.passes import MAX_ALPHA, TRANSMITTANCE_STOP
from cvd_sim.splat.projection import ALPHA_THRESHOLD
from cvd_sim.splat.tiles import TILE, TILE_PIXELS, TilePlan, image_to_tiles, tiles_to_image


@numba.njit(inline="always")
def _pair_alpha(a, b, o, dx, dy, cdd, max_alpha, min_alpha, zero):
    """(vis, α) of one (Gaussian, pixel) pair with σ = a·dx² + c·dy² (cdd) + b·dx·dy; α = 0 when the pair is
    skipped (σ < 0 or α < 1/255)."""
    sigma = a * dx * dx + cdd
    sigma += b * dx * dy
    if sigma < zero:
        return zero, zero
    vis = np.exp(-sigma)
    alpha = min(max_alpha, o * vis)
    if alpha < min_alpha:
        return zero, zero
    return vis, alpha


@numba.njit(parallel=True, cache=True, nogil=True)
def _forward_tiles(
    tile_start, tile_count, gaussian, box_x0, box_y0, box_w, box_h, pad,
    entry_dx0, entry_dy0, conics, opacities, feats, ramp, consts, out, final_trans, stop_entry,
):  # fmt: skip
    """Fill out [n_px, D + 1] (features, then alpha), final_trans [n_px] and stop_entry [n_px] (the entry a
    pixel stopped at; tile end when it never stopped, tile start on padding), tile-major, n_px = n_tiles * 256.

    Per tile entry [E]: gaussian, box (x0, y0, w, h) in the tile, (dx0, dy0) = mean - centre of the box's first
    pixel; per splatted Gaussian [V]: conics [V, 3], opacities [V], feats [V, D]; pad [n_tiles, 256] bool;
    ramp [16] = 0..15 and consts = (stop, max α, min α, 1, 0.5, 0) in the float type, so that all arithmetic
    stays in it (float32 or float64, as in the torch reference).
    """
    n_feat = feats.shape[1]
    stop, max_alpha, min_alpha, one, half, zero = (
        consts[0],
        consts[1],
        consts[2],
        consts[3],
        consts[4],
        consts[5],
    )
    for t in numba.prange(tile_start.shape[0]):
        begin, end = tile_start[t], tile_start[t] + tile_count[t]
        trans = np.ones(TILE_PIXELS, dtype=consts.dtype)
        stopped_at = np.empty(TILE_PIXELS, dtype=np.int64)
        acc = np.zeros((TILE_PIXELS, n_feat), dtype=feats.dtype)
        n_running = 0
        for p in range(TILE_PIXELS):
            stopped_at[p] = begin if pad[t, p] else end
            n_running += not pad[t, p]
        for e in range(begin, end):
            if n_running == 0:
                break
            g = gaussian[e]
            x0, y0 = box_x0[e], box_y0[e]
            a, b, c = half * conics[g, 0], conics[g, 1], half * conics[g, 2]
            o = opacities[g]
            dx0, dy0 = entry_dx0[e], entry_dy0[e]
            for row in range(box_h[e]):
                dy = dy0 - ramp[row]
                cdd = c * dy * dy
                pix0 = (y0 + row) * TILE + x0
                for col in range(box_w[e]):
                    p = pix0 + col
                    if stopped_at[p] != end:
                        continue
                    alpha = _pair_alpha(a, b, o, dx0 - ramp[col], dy, cdd, max_alpha, min_alpha, zero)[1]
                    if alpha == zero:
                        continue
                    behind = trans[p] * (one - alpha)
                    if behind <= stop:  # the pixel stops before this Gaussian
                        stopped_at[p] = e
                        n_running -= 1
                        continue
                    weight = alpha * trans[p]
                    for d in range(n_feat):
                        acc[p, d] += weight * feats[g, d]
                    trans[p] = behind
        base = t * TILE_PIXELS
        for p in range(TILE_PIXELS):
            for d in range(n_feat):
                out[base + p, d] = acc[p, d]
            out[base + p, n_feat] = one - trans[p]
            final_trans[base + p] = trans[p]
            stop_entry[base + p] = stopped_at[p]


@numba.njit(parallel=True, cache=True, nogil=True)
def _backward_tiles(
    tile_start, tile_count, gaussian, box_x0, box_y0, box_w, box_h,
    entry_dx0, entry_dy0, conics, opacities, feats, ramp, consts,
    final_trans, stop_entry, grad_feats, grad_alpha, entry_grads,
):  # fmt: skip
    """Per-entry gradient sums entry_grads [E, D + 6] from grad_feats [n_px, D] and grad_alpha [n_px].

    Rows as in `composite._backward_chunk`: feats (D), opacity, then -Σ(dx², dx·dy, dy²)·dσ and -Σ dx·dσ,
    -Σ dy·dσ with dσ = dL/dσ. Other arguments as in `_forward_tiles` and its outputs.
    """
    n_feat = feats.shape[1]
    max_alpha, min_alpha, one, half, zero = consts[1], consts[2], consts[3], consts[4], consts[5]
    for t in numba.prange(tile_start.shape[0]):
        begin, end = tile_start[t], tile_start[t] + tile_count[t]
        base = t * TILE_PIXELS
        trans = np.empty(TILE_PIXELS, dtype=consts.dtype)  # T behind the pairs walked so far
        behind = np.zeros(TILE_PIXELS, dtype=consts.dtype)  # Σ w·(grad·feat) of the pairs behind
        alpha_term = np.empty(TILE_PIXELS, dtype=consts.dtype)
        for p in range(TILE_PIXELS):
            trans[p] = final_trans[base + p]
            alpha_term[p] = final_trans[base + p] * grad_alpha[base + p]
        for e in range(end - 1, begin - 1, -1):
            g = gaussian[e]
            x0, y0 = box_x0[e], box_y0[e]
            a, b, c = half * conics[g, 0], conics[g, 1], half * conics[g, 2]
            o = opacities[g]
            dx0, dy0 = entry_dx0[e], entry_dy0[e]
            for row in range(box_h[e]):
                dy = dy0 - ramp[row]
                cdd = c * dy * dy
                pix0 = (y0 + row) * TILE + x0
                for col in range(box_w[e]):
                    p = pix0 + col
                    if e >= stop_entry[base + p]:
                        continue
                    dx = dx0 - ramp[col]
                    vis, alpha = _pair_alpha(a, b, o, dx, dy, cdd, max_alpha, min_alpha, zero)
                    if alpha == zero:
                        continue
                    front = trans[p] / (one - alpha)
                    weight = alpha * front
                    gc = zero
                    for d in range(n_feat):
                        grad = grad_feats[base + p, d]
                        entry_grads[e, d] += weight * grad
                        gc += grad * feats[g, d]
                    d_alpha = front * gc + (alpha_term[p] - behind[p]) / (one - alpha)
                    if alpha >= max_alpha:  # clamped: α = 0.999 does not move
                        d_alpha = zero
                    entry_grads[e, n_feat] += d_alpha * vis
                    d_sigma_neg = d_alpha * alpha
                    dxs, dys = dx * d_sigma_neg, dy * d_sigma_neg
                    entry_grads[e, n_feat + 1] += dx * dxs
                    entry_grads[e, n_feat + 2] += dx * dys
                    entry_grads[e, n_feat + 3] += dy * dys
                    entry_grads[e, n_feat + 4] += dxs
                    entry_grads[e, n_feat + 5] += dys
                    behind[p] += weight * gc
                    trans[p] = front


class _Kernels:
    """The plan and per-Gaussian arrays both kernels read, as numpy (views of CPU tensors where possible)."""

    def __init__(self, means2d, conics, feats, opacities, plan: TilePlan):
        dtype = means2d.dtype
        gauss = plan.sources.index_select(0, plan.gaussian)  # flat Gaussian of each tile entry
        tile = torch.repeat_interleave(torch.arange(plan.n_tiles), plan.tile_count)
        in_camera = tile % (plan.tiles_x * plan.tiles_y)
        origin_x = ((in_camera % plan.tiles_x) * TILE).to(dtype) + 0.5
        origin_y = (torch.div(in_camera, plan.tiles_x, rounding_mode="floor") * TILE).to(dtype) + 0.5
        # the torch walk's rounding: (mean - tile origin) - box offset
        entry_dx0 = means2d[:, 0].index_select(0, gauss) - origin_x - plan.x0.to(dtype)
        entry_dy0 = means2d[:, 1].index_select(0, gauss) - origin_y - plan.y0.to(dtype)
        src = plan.sources
        self.plan_arrays = [
            t.contiguous().numpy()
            for t in (
                plan.tile_start,
                plan.tile_count,
                plan.gaussian,
                plan.x0,
                plan.y0,
                plan.box_w,
                plan.box_h,
            )
        ]
        self.entry_arrays = [entry_dx0.numpy(), entry_dy0.numpy()]
        self.gaussian_arrays = [
            t.detach().index_select(0, src).to(dtype).contiguous().numpy() for t in (conics, opacities, feats)
        ]
        self.np_dtype = self.gaussian_arrays[0].dtype
        self.ramp = np.arange(TILE, dtype=self.np_dtype)
        self.consts = np.array(
            [TRANSMITTANCE_STOP, MAX_ALPHA, ALPHA_THRESHOLD, 1.0, 0.5, 0.0], dtype=self.np_dtype
        )
        match_torch_threads()

    def forward(self, plan: TilePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_px = plan.n_tiles * TILE_PIXELS
        out = np.empty((n_px, self.gaussian_arrays[2].shape[1] + 1), dtype=self.np_dtype)
        final_trans = np.empty(n_px, dtype=self.np_dtype)
        stop_entry = np.empty(n_px, dtype=np.int64)
        _forward_tiles(
            *self.plan_arrays, plan.pad_mask.numpy(), *self.entry_arrays, *self.gaussian_arrays,
            self.ramp, self.consts, out, final_trans, stop_entry,
        )  # fmt: skip
        return out, final_trans, stop_entry

    def backward(self, final_trans, stop_entry, grad_feats: np.ndarray, grad_alpha: np.ndarray) -> np.ndarray:
        entry_grads = np.zeros((self.plan_arrays[2].shape[0], grad_feats.shape[1] + 6), dtype=self.np_dtype)
        _backward_tiles(
            *self.plan_arrays, *self.entry_arrays, *self.gaussian_arrays, self.ramp, self.consts,
            final_trans, stop_entry, grad_feats, grad_alpha, entry_grads,
        )  # fmt: skip
        return entry_grads


@torch.no_grad()
def composite_numba(
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

    Same contract as `composite_no_grad`; runs on as many threads as torch (`torch.get_num_threads`).
    """
    out = _Kernels(means2d, conics, feats, opacities, plan).forward(plan)[0]
    img = tiles_to_image(torch.from_numpy(out), n_cameras, plan, height, width)
    return img[..., :-1], img[..., -1:]


class RasterizeToPixelsNumba(torch.autograd.Function):
    """`composite.RasterizeToPixels` (same arguments, results and gradients to float rounding) on the kernels:
    (means2d [G, 2], conics [G, 3], feats [G, D], opacities [G]) -> (img [C, H, W, D], alpha [C, H, W, 1])."""

    @staticmethod
    def forward(
        ctx, means2d, conics, feats, opacities, plan: TilePlan, n_cameras: int, width: int, height: int
    ):
        kernels = _Kernels(means2d.detach(), conics, feats, opacities, plan)
        out, final_trans, stop_entry = kernels.forward(plan)
        ctx.kernels, ctx.plan, ctx.n_flat = kernels, plan, means2d.shape[0]
        ctx.final_trans, ctx.stop_entry = final_trans, stop_entry
        img = tiles_to_image(torch.from_numpy(out), n_cameras, plan, height, width)
        return img[..., :-1], img[..., -1:]

    @staticmethod
    def backward(ctx, grad_feats, grad_alpha):
        kernels, plan = ctx.kernels, ctx.plan
        dtype = torch.from_numpy(kernels.consts).dtype
        grad_feats = image_to_tiles(grad_feats.to(dtype), plan).contiguous().numpy()
        grad_alpha = image_to_tiles(grad_alpha.to(dtype), plan).reshape(-1).contiguous().numpy()
        entry_grads = kernels.backward(ctx.final_trans, ctx.stop_entry, grad_feats, grad_alpha)
        n_feat = grad_feats.shape[1]
        grads = torch.zeros(plan.sources.numel(), n_feat + 6, dtype=dtype)
        grads.index_add_(0, plan.gaussian, torch.from_numpy(entry_grads))
        con_a, con_b, con_c = torch.from_numpy(kernels.gaussian_arrays[0]).unbind(1)
        sum_dxs, sum_dys = grads[:, n_feat + 4], grads[:, n_feat + 5]
        grad_means = -torch.stack(
            [con_a * sum_dxs + con_b * sum_dys, con_b * sum_dxs + con_c * sum_dys], dim=1
        )
        grad_conics = grads[:, n_feat + 1 : n_feat + 4] * torch.tensor([-0.5, -1.0, -0.5], dtype=dtype)

        def full(compact: torch.Tensor) -> torch.Tensor:  # [V, ...] -> [G, ...], zero where not splatted
            return compact.new_zeros(ctx.n_flat, *compact.shape[1:]).index_copy_(0, plan.sources, compact)

        return (
            full(grad_means),
            full(grad_conics),
            full(grads[:, :n_feat]),
            full(grads[:, n_feat]),
            None,
            None,
            None,
            None,
        )
