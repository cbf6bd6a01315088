"""A reference for the GS-render PSNR column: STORM-style pixel-aligned Gaussians built from the ground truth.

One Gaussian per context pixel with ground-truth depth, at the pixel's true colour, opaque, isotropic and
`scale` pixels wide, no motion; splatted into the target frames as the Gaussian decoder's are (all context
frames at once, gsplat's 0.3 px² dilation), then normalised by alpha, with the true image where there is no
ground-truth depth (sky). Relative depth noise shows how fast the render degrades with depth error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from cvd_sim.geometry.rays import camera_rays
from cvd_sim.models.clip_cameras import clip_cameras
from cvd_sim.models.storm_vae_eval import image_psnr_ssim
from cvd_sim.splat.rasterize import rasterize


def ground_truth_gaussians(
    clip: dict[str, torch.Tensor],
    frames: torch.Tensor,
    ref_frame: int,
    depth_noise: float = 0.0,
    scale: float = 0.25,
    opacity: float = 0.999,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Gaussians of the pixels with ground-truth depth in `frames` of a batched clip (batch 1).

    Depth is multiplied by (1 + depth_noise * N(0, 1)) per pixel; the Gaussian's standard deviation is `scale`
    pixels at its depth. -> {"means", "scales": [N, 3], "quats": [N, 4] wxyz, "opacities": [N],
    "colors": [N, 3] in [0, 1]}.
    """
    if clip["images"].shape[0] != 1:
        raise ValueError("ground_truth_gaussians reads one clip (batch size 1)")
    k, cam_to_ref, _ = clip_cameras(clip, frames, ref_frame)
    height, width = clip["images"].shape[-2:]
    origins, directions = camera_rays(k, cam_to_ref, height, width)  # [1, T, V, H, W, 3]
    depth = clip["depth"][:, frames.to(k.device), :, 0].float()  # [1, T, V, H, W]
    valid = depth > 0.01
    noise = torch.randn(depth.shape, generator=generator, dtype=torch.float32).to(depth.device)
    noisy = (depth * (1.0 + depth_noise * noise)).clamp(min=0.2)
    focal = k[..., 0, 0][..., None, None].expand_as(depth)
    colors = (clip["images"][:, frames.to(k.device)].permute(0, 1, 2, 4, 5, 3).float() + 1.0) / 2.0
    n = int(valid.sum())
    return {
        "means": (origins + noisy[..., None] * directions)[valid],
        "scales": (noisy / focal * scale)[valid][:, None].expand(n, 3).contiguous(),
        "quats": torch.tensor([1.0, 0.0, 0.0, 0.0], device=k.device).expand(n, 4).contiguous(),
        "opacities": torch.full((n,), opacity, device=k.device),
        "colors": colors[valid],
    }


def render_with_true_sky(
    gaussians: dict[str, torch.Tensor], clip: dict[str, torch.Tensor], frame: int, ref_frame: int
) -> torch.Tensor:
    """Splat into every view of `frame`; pixels without ground-truth depth (sky) take the true image, others the
    alpha-normalised render. -> images [V, 3, H, W] in [-1, 1]."""
    k, cam_to_ref, _ = clip_cameras(clip, torch.tensor([frame]), ref_frame)
    height, width = clip["images"].shape[-2:]
    rgb, alpha, _ = rasterize(
        gaussians["means"],
        gaussians["quats"],
        gaussians["scales"],
        gaussians["opacities"],
        gaussians["colors"],
        torch.linalg.inv(cam_to_ref[0, 0]),
        k[0, 0],
        width,
        height,
        near_plane=0.2,
        far_plane=400.0,
    )
    image = rgb / alpha.clamp(min=1e-3)  # [V, H, W, 3]
    truth = (clip["images"][0, frame].permute(0, 2, 3, 1).float() + 1.0) / 2.0
    sky = clip["depth"][0, frame, :, 0] <= 0.01
    image = torch.where(sky[..., None], truth, image)
    return image.permute(0, 3, 1, 2) * 2.0 - 1.0


@torch.no_grad()
def evaluate_ground_truth_splats(
    dataset: Dataset,
    context_frames: Sequence[int] = (0, 6, 12, 18),
    depth_noises: Sequence[float] = (0.0, 0.05, 0.1),
    scale: float = 0.25,
    max_clips: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Per depth-noise level: mean PSNR at the non-context frames (the GS column's frames) and at the context
    frames themselves, over clips of `dataset`. -> [{"depth_noise", "psnr_targets", "psnr_context"}]."""
    n = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    ctx = torch.tensor(list(context_frames))
    psnr = {(noise, kind): [] for noise in depth_noises for kind in ("targets", "context")}
    loader = DataLoader(Subset(dataset, range(n)), batch_size=1)
    for clip in tqdm(loader, total=n, desc="gs oracle", disable=not progress):
        t_len = clip["images"].shape[1]
        if t_len <= int(ctx.max()):
            raise ValueError(f"clips have {t_len} frames; context frames {list(context_frames)} do not fit")
        for noise in depth_noises:
            gen = torch.Generator().manual_seed(seed)
            gaussians = ground_truth_gaussians(clip, ctx, int(ctx[0]), noise, scale, generator=gen)
            for frame in range(t_len):
                rendered = render_with_true_sky(gaussians, clip, frame, int(ctx[0]))
                p, _ = image_psnr_ssim(rendered, clip["images"][0, frame])
                psnr[(noise, "context" if frame in ctx.tolist() else "targets")].append(p)
    return [
        {
            "depth_noise": float(noise),
            "psnr_targets": float(torch.cat(psnr[(noise, "targets")]).mean()),
            "psnr_context": float(torch.cat(psnr[(noise, "context")]).mean()),
        }
        for noise in depth_noises
    ]
