"""Held-out evaluation of STORM-VAE in the paper's Table 3(a) columns.

VAE reconstruction PSNR / SSIM over every frame and view; GS-render PSNR at the non-context frames
(reconstructed from the context frames' latents); depth RMSE, AbsRel and δ<1.25 of the GS depth there,
against ground-truth depth (pixels with depth > 0.01 m).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm.auto import tqdm

from cvd_sim.models.clip_cameras import clip_cameras
from cvd_sim.models.storm_vae import StormVAE

METRIC_NAMES = ("vae_psnr", "vae_ssim", "gs_psnr", "depth_rmse", "depth_absrel", "depth_delta1")


def image_psnr_ssim(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pred/target [N, 3, H, W] in [-1, 1] -> per-image PSNR [N] (dB, peak 1 on [0, 1]) and SSIM [N]."""
    p = (pred.float().clamp(-1, 1) + 1) / 2
    t = (target.float().clamp(-1, 1) + 1) / 2
    psnr = peak_signal_noise_ratio(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
    return psnr, ssim


def depth_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums over valid pixels (target > 0.01 m): squared error, relative error, δ<1.25 hits, and count."""
    valid = target > 0.01
    p, t = pred[valid].double().clamp(min=1e-3), target[valid].double()
    ratio = torch.maximum(p / t, t / p)
    return {
        "sq": (p - t).square().sum(),
        "rel": ((p - t).abs() / t).sum(),
        "delta1": (ratio < 1.25).sum().double(),
        "count": torch.tensor(float(valid.sum()), dtype=torch.float64),
    }


@torch.no_grad()
def evaluate_storm_vae(
    model: StormVAE,
    dataset: Dataset,
    context_frames: Sequence[int] = (0, 6, 12, 18),
    max_clips: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Table 3(a) metrics averaged over clips of `dataset` (clip dicts, DESIGN contract)."""
    model.eval()
    device = next(model.parameters()).device
    n = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    loader = DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=1)
    psnr_vae, ssim_vae, psnr_gs = [], [], []
    depth_sums = {"sq": 0.0, "rel": 0.0, "delta1": 0.0, "count": 0.0}
    ctx = torch.tensor(list(context_frames))
    for clip in tqdm(loader, total=n, desc="eval vae", disable=not progress):
        clip = {k: v.to(device) if torch.is_tensor(v) else v for k, v in clip.items()}
        images = clip["images"]  # [1, T, V, 3, H, W]
        t_len, height, width = images.shape[1], images.shape[-2], images.shape[-1]
        if t_len <= int(ctx.max()):
            raise ValueError(f"clips have {t_len} frames; context frames {list(context_frames)} do not fit")
        latents_all = model.encode(images)
        recon = model.decode(latents_all)
        p, s = image_psnr_ssim(recon.flatten(0, 2), images.flatten(0, 2))
        psnr_vae.append(p)
        ssim_vae.append(s)

        k_c, c2r_c, t_c = clip_cameras(clip, ctx, int(ctx[0]))
        latents = latents_all[:, ctx.to(device)]
        for frame in (f for f in range(t_len) if f not in set(ctx.tolist())):
            k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor([frame]), int(ctx[0]))
            out = model.reconstruct(latents, k_c, c2r_c, t_c, k_t, c2r_t, t_t, height, width)
            p, _ = image_psnr_ssim(out["rgb"].flatten(0, 2), images[:, frame].flatten(0, 1))
            psnr_gs.append(p)
            for key, value in depth_errors(out["depth"], clip["depth"][:, frame : frame + 1]).items():
                depth_sums[key] += float(value)
    count = max(depth_sums["count"], 1.0)
    return {
        "vae_psnr": float(torch.cat(psnr_vae).mean()),
        "vae_ssim": float(torch.cat(ssim_vae).mean()),
        "gs_psnr": float(torch.cat(psnr_gs).mean()) if psnr_gs else float("nan"),
        "depth_rmse": (depth_sums["sq"] / count) ** 0.5,
        "depth_absrel": depth_sums["rel"] / count,
        "depth_delta1": depth_sums["delta1"] / count,
        "clips": n,
        "depth_pixels": int(depth_sums["count"]),
    }
