"""`cvd-sim eval dit`: a WorldModel generates held-out clips from k ground-truth reference frames and their
conditions; the generated frames are compared with the ground truth.

Per generated frame (by window position): PSNR and SSIM of the decoded images, and AbsRel of the depth that the
Gaussian decoder reconstructs from the generated window's latents, against ground-truth depth. FID runs through
torchmetrics only when torch-fidelity and local Inception weights are present; torchmetrics has no FVD, and no I3D
weights are shipped, so FVD is reported as skipped.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvd_sim.cli import UserError

# The CLI imports this module to register `eval dit`: torch, diffusers and torchmetrics load on use only.
if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from cvd_sim.pipelines.world_conditions import WorldConditions
    from cvd_sim.pipelines.world_model import WorldModel

MAX_GS_CONTEXT = 4  # the Gaussian decoder is trained on 4 context frames


def clip_conditions(clip: dict[str, Any]) -> WorldConditions:
    """Batched clip dict (B = 1, DESIGN contract) -> its WorldConditions (caption, cameras, poses, layout)."""
    from cvd_sim.pipelines.world_conditions import WorldConditions
    from cvd_sim.sensors.layout import layout_for_clip

    height, width = clip["images"].shape[-2:]
    layout = layout_for_clip(
        clip["boxes"][0],
        clip["box_categories"][0],
        clip["map_polylines"][0],
        clip["map_types"][0],
        clip["ego_to_world"][0],
        clip["intrinsics"][0],
        clip["cam_to_ego"][0],
        height,
        width,
    )
    return WorldConditions(
        prompt=list(clip["text"]),
        intrinsics=clip["intrinsics"].float(),
        cam_to_ego=clip["cam_to_ego"].float(),
        ego_to_world=clip["ego_to_world"].float(),
        height=height,
        width=width,
        layout=layout[None].to(clip["images"].device),
    )


def gs_depth(
    world: WorldModel, latents: torch.Tensor, clip: dict[str, Any], frames: list[int]
) -> torch.Tensor:
    """Depth [1, len(frames), V, 1, H, W] rendered at `frames` from Gaussians of up to 4 evenly spaced window
    latents [1, T, V, C, h, w] (cameras relative to the first context frame)."""
    import numpy as np
    import torch

    from cvd_sim.models.clip_cameras import clip_cameras

    t_len = latents.shape[1]
    context = torch.from_numpy(
        np.unique(np.linspace(0, t_len - 1, min(MAX_GS_CONTEXT, t_len)).round())
    ).long()
    k_c, c2r_c, t_c = clip_cameras(clip, context, int(context[0]))
    k_t, c2r_t, t_t = clip_cameras(clip, torch.tensor(frames), int(context[0]))
    height, width = clip["images"].shape[-2:]
    out = world.reconstruct(
        latents[:, context.to(latents.device)], k_c, c2r_c, t_c, k_t, c2r_t, t_t, height, width
    )
    return out["depth"]


class FidMeter:
    """torchmetrics FID over generated vs real frames, when torch-fidelity and the Inception weights exist."""

    def __init__(self, weights: str | Path | None):
        self.metric, self.reason = None, None
        if importlib.util.find_spec("torch_fidelity") is None:
            self.reason = "torch-fidelity is not installed (torchmetrics needs it for the Inception network)"
        elif weights is None or not Path(weights).is_file():
            self.reason = (
                "no local Inception weights (pass --inception-weights pt_inception-2015-12-05-6726825d.pth)"
            )
        else:
            from torchmetrics.image.fid import FrechetInceptionDistance

            self.metric = FrechetInceptionDistance(
                normalize=True, feature_extractor_weights_path=str(weights)
            )

    def update(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        """fake / real [N, 3, H, W] in [-1, 1]."""
        if self.metric is not None:
            self.metric.update((real.float().cpu() + 1) / 2, real=True)
            self.metric.update((fake.float().cpu() + 1) / 2, real=False)

    def result(self) -> float | None:
        return None if self.metric is None else float(self.metric.compute())


def evaluate_world_model(
    world: WorldModel,
    clips: Dataset,
    num_references: int = 3,
    num_steps: int = 20,
    guidance_scale: float = 2.0,
    max_clips: int | None = None,
    seed: int = 0,
    inception_weights: str | Path | None = None,
    with_depth: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate every clip of `clips` (clip dicts of T frames) from its first `num_references` encoded frames.

    Returns mean PSNR / SSIM / depth AbsRel over generated images, the PSNR of the trivial baseline that repeats
    the last reference frame (None without references), the same per window position
    (`per_frame`: lists indexed by frame, None for reference frames), FID (or None) and the skip reasons.
    with_depth=False skips the Gaussian reconstruction (a VAE without a trained Gaussian decoder)."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from cvd_sim.models.storm_vae_eval import depth_errors, image_psnr_ssim

    n = len(clips) if max_clips is None else min(max_clips, len(clips))
    if n == 0:
        raise ValueError("no clips to evaluate")
    loader = DataLoader(Subset(clips, range(n)), batch_size=1)
    device = world.device
    generator = torch.Generator().manual_seed(seed)
    psnr: dict[int, list[torch.Tensor]] = {}
    ssim: dict[int, list[torch.Tensor]] = {}
    copy_psnr: list[torch.Tensor] = []
    depth: dict[int, dict[str, float]] = {}
    fid = FidMeter(inception_weights)
    t_len = 0
    with torch.no_grad():  # WorldModel calls are no-grad already; the metrics too
        for clip in tqdm(loader, total=n, desc="eval dit", disable=not progress):
            clip = {k: v.to(device) if torch.is_tensor(v) else v for k, v in clip.items()}
            images = clip["images"]
            t_len = images.shape[1]
            if not 0 <= num_references < t_len:
                raise ValueError(
                    f"{num_references} reference frames leave nothing to generate in {t_len} frames"
                )
            refs = world.encode(images[:, :num_references]) if num_references else None
            latents = world.generate(
                clip_conditions(clip),
                refs,
                num_steps=num_steps,
                guidance_scale=guidance_scale,
                generator=generator,
            )
            frames = list(range(num_references, t_len))
            decoded = world.decode(latents[:, num_references:])
            rendered_depth = gs_depth(world, latents, clip, frames) if with_depth else None
            for i, frame in enumerate(frames):
                p, s = image_psnr_ssim(decoded[:, i].flatten(0, 1), images[:, frame].flatten(0, 1))
                psnr.setdefault(frame, []).append(p)
                ssim.setdefault(frame, []).append(s)
                if num_references:  # trivial baseline: repeat the last reference frame
                    last = images[:, num_references - 1].flatten(0, 1)
                    copy_psnr.append(image_psnr_ssim(last, images[:, frame].flatten(0, 1))[0])
                if rendered_depth is not None:
                    errors = depth_errors(rendered_depth[:, i], clip["depth"][:, frame])
                    sums = depth.setdefault(frame, {"rel": 0.0, "count": 0.0})
                    sums["rel"] += float(errors["rel"])
                    sums["count"] += float(errors["count"])
            fid.update(decoded.flatten(0, 2), images[:, num_references:].flatten(0, 2))

    def per_frame(values: dict[int, Any], reduce) -> list[float | None]:
        return [reduce(values[f]) if f in values else None for f in range(t_len)]

    all_rel = sum(d["rel"] for d in depth.values())
    all_count = sum(d["count"] for d in depth.values())
    return {
        "psnr": float(torch.cat([x for v in psnr.values() for x in v]).mean()),
        "ssim": float(torch.cat([x for v in ssim.values() for x in v]).mean()),
        "depth_absrel": all_rel / all_count if all_count else None,
        "copy_last_reference_psnr": float(torch.cat(copy_psnr).mean()) if copy_psnr else None,
        "fid": fid.result(),
        "fvd": None,
        "skipped": {
            **({"fid": fid.reason} if fid.reason else {}),
            "fvd": "torchmetrics has no FVD and no local I3D weights are available",
        },
        "per_frame": {
            "psnr": per_frame(psnr, lambda v: float(torch.cat(v).mean())),
            "ssim": per_frame(ssim, lambda v: float(torch.cat(v).mean())),
            "depth_absrel": per_frame(depth, lambda d: d["rel"] / d["count"] if d["count"] else None),
        },
        "clips": n,
        "num_references": num_references,
        "num_steps": num_steps,
        "guidance_scale": guidance_scale,
    }


# ---------------------------------------------------------------------------------------------- CLI hook
def load_world_model(path: str | Path) -> WorldModel:
    """A WorldModel folder, or a training run folder holding one in final/."""
    import torch

    from cvd_sim.pipelines.world_model import WorldModel

    path = Path(path)
    for candidate in (path, path / "final"):
        if (candidate / "dit").is_dir():
            try:
                world = WorldModel.from_pretrained(candidate)
            except (OSError, ValueError, RuntimeError) as err:
                raise UserError(
                    f"{candidate}: cannot load the world model: {err}".replace("\n", " ")
                ) from err
            return world.to("cuda" if torch.cuda.is_available() else "cpu")
    raise UserError(f"{path}: not a WorldModel folder (expected dit/, vae/, gaussian_decoder/, ... inside)")


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Rows of (name, figures) -> a Markdown table of PSNR / SSIM / AbsRel / FID."""
    lines = [
        "| variant | PSNR (dB) | SSIM | depth AbsRel | FID | PSNR of repeating the last reference |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in rows:
        fid = "skipped" if f.get("fid") is None else f"{f['fid']:.1f}"
        absrel = f.get("depth_absrel")
        absrel_text = "n/a" if absrel is None else f"{absrel:.3f}"
        copy = f.get("copy_last_reference_psnr")
        copy_text = "n/a" if copy is None else f"{copy:.2f}"
        lines.append(f"| {name} | {f['psnr']:.2f} | {f['ssim']:.3f} | {absrel_text} | {fid} | {copy_text} |")
    return "\n".join(lines)


def run_from_cli(args) -> int:
    """`cvd-sim eval dit` handler."""
    from cvd_sim.models.clip_data import open_clips

    if not Path(args.data).is_dir():
        raise UserError(f"--data: folder {args.data} does not exist")
    world = load_world_model(args.checkpoint)
    try:
        clips = open_clips(
            args.data, args.version, args.split, args.num_frames, args.height, args.width, args.num_frames
        )
        figures = evaluate_world_model(
            world,
            clips,
            args.num_references,
            args.steps,
            args.guidance,
            args.max_clips,
            args.seed,
            args.inception_weights,
        )
    except (ValueError, FileNotFoundError, AssertionError) as err:
        raise UserError(f"{args.data}: {err}") from err
    print(format_table([(f"{args.num_references} reference frames", figures)]))
    for metric, reason in figures["skipped"].items():
        print(f"{metric.upper()} skipped: {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0
