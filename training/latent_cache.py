"""Stage-2 latent cache: a frozen STORM-VAE encoder turns clips into latents on disk, beside their conditions.

One compressed `.npz` per clip, written atomically, so an interrupted build resumes where it stopped. Per clip
and per resolution `HxW`: latents [T, V, 16, H/8, W/8] (posterior mean, normalised), layout images
[T, V, 6, H, W] (uint8, `cvd_sim.sensors.layout.layout_for_clip`) and intrinsics [T, V, 3, 3] for that size;
shared: cam_to_ego [T, V, 4, 4], ego_to_world [T, 4, 4], timestamps [T] and the caption. Camera rays relative
to the first frame's ego pose are formed from these per training window (`window_cameras`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from cvd_sim.cli import UserError
from cvd_sim.models.camera_embedding import camera_to_first_ego
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.sensors.layout import layout_for_clip

MANIFEST = "manifest.json"


def resolution_key(height: int, width: int) -> str:
    return f"{height}x{width}"


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """images [..., 3, H, W] -> [..., 3, height, width] (area-weighted when shrinking, bilinear otherwise)."""
    if tuple(images.shape[-2:]) == (height, width):
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    shrink = height <= images.shape[-2] and width <= images.shape[-1]
    out = F.interpolate(flat, size=(height, width), mode="area" if shrink else "bilinear")
    return out.reshape(*images.shape[:-2], height, width)


def scale_intrinsics(
    intrinsics: torch.Tensor, from_hw: tuple[int, int], to_hw: tuple[int, int]
) -> torch.Tensor:
    """Pixel intrinsics [..., 3, 3] of a from_hw image -> those of the same image resized to to_hw."""
    scale = torch.tensor([to_hw[1] / from_hw[1], to_hw[0] / from_hw[0], 1.0], dtype=intrinsics.dtype)
    return intrinsics * scale.to(intrinsics.device)[:, None]


def _weights_digest(folder: Path) -> str:
    """sha256 over the STORM-VAE's config and weight files (detects a cache built with other weights)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_clip(
    vae: StormVAE, clip: dict[str, Any], resolutions: Sequence[tuple[int, int]]
) -> dict[str, np.ndarray]:
    """One clip dict (DESIGN contract, unbatched) -> the arrays of its cache entry (see module docstring)."""
    device = next(vae.parameters()).device
    images = clip["images"].float()
    base_hw = tuple(images.shape[-2:])
    entry: dict[str, np.ndarray] = {
        "cam_to_ego": clip["cam_to_ego"].float().numpy(),
        "ego_to_world": clip["ego_to_world"].float().numpy(),
        "timestamps": np.asarray(clip["timestamps"], dtype=np.float64),
        "text": np.array(clip["text"]),
    }
    for height, width in resolutions:
        key = resolution_key(height, width)
        k = scale_intrinsics(clip["intrinsics"].float(), base_hw, (height, width))
        resized = resize_images(images, height, width).to(device)
        entry[f"latents_{key}"] = vae.encode(resized[None])[0].float().cpu().numpy()
        layout = layout_for_clip(
            clip["boxes"],
            clip["box_categories"],
            clip["map_polylines"],
            clip["map_types"],
            clip["ego_to_world"],
            k,
            clip["cam_to_ego"],
            height,
            width,
        )
        entry[f"layout_{key}"] = (layout.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
        entry[f"intrinsics_{key}"] = k.numpy()
    return entry


def build_latent_cache(
    vae_folder: str | Path,
    clips: Dataset,
    out_dir: str | Path,
    resolutions: Sequence[tuple[int, int]],
    data_id: dict[str, Any],
    progress: bool = True,
) -> Path:
    """Encode every clip of `clips` with the frozen STORM-VAE in `vae_folder` into out_dir/clip_NNNNNN.npz.

    Resumes: entries already on disk are kept. A manifest records the weights' digest, `data_id` (what the
    clips are) and the resolutions; a cache built from anything else raises UserError instead of mixing."""
    out_dir, vae_folder = Path(out_dir), Path(vae_folder)
    manifest = {
        "vae": str(vae_folder),
        "vae_sha256": _weights_digest(vae_folder),
        "data": data_id,
        "resolutions": [list(r) for r in resolutions],
        "clips": len(clips),
    }
    manifest = json.loads(json.dumps(manifest, default=str))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise UserError(
                f"{manifest_path}: the cache was built with different {', '.join(changed)}; "
                "delete the folder or choose another cache directory"
            )
    else:
        manifest_path.write_text(json.dumps(manifest, indent=1))
    missing = [i for i in range(len(clips)) if not (out_dir / f"clip_{i:06d}.npz").is_file()]
    if missing:
        vae = StormVAE.from_pretrained(vae_folder).eval().requires_grad_(False)
        vae.to("cuda" if torch.cuda.is_available() else "cpu")
        for index in tqdm(missing, desc="latent cache", disable=not progress):
            entry = encode_clip(vae, clips[index], resolutions)
            tmp = out_dir / f".clip_{index:06d}.tmp.npz"
            np.savez_compressed(tmp, **entry)
            os.replace(tmp, out_dir / f"clip_{index:06d}.npz")
    return out_dir


class LatentCache(Dataset):
    """The clips of a built cache: item = {"latents_HxW", "layout_HxW" (float in [0, 1]), "intrinsics_HxW",
    "cam_to_ego", "ego_to_world", "timestamps" (tensors, shapes as in the module docstring), "text" str}."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise UserError(f"{self.folder}: no latent cache here ({MANIFEST} missing)")
        self.manifest = json.loads(manifest_path.read_text())
        self.resolutions = [tuple(r) for r in self.manifest["resolutions"]]
        self.files = [self.folder / f"clip_{i:06d}.npz" for i in range(self.manifest["clips"])]
        absent = [f.name for f in self.files if not f.is_file()]
        if absent:
            raise UserError(f"{self.folder}: cache incomplete ({len(absent)} clips missing); build it again")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with np.load(self.files[index]) as data:
            item: dict[str, Any] = {}
            for name in data.files:
                if name == "text":
                    item[name] = str(data[name])
                elif name.startswith("layout_"):
                    item[name] = torch.from_numpy(data[name]).float() / 255.0
                else:
                    item[name] = torch.from_numpy(data[name])
        return item


def window_cameras(
    intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, ego_to_world: torch.Tensor, start: int, stop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras of frames start..stop-1 relative to the ego pose of frame `start`.

    intrinsics [B, T, V, 3, 3], cam_to_ego [B, T, V, 4, 4], ego_to_world [B, T, 4, 4] ->
    (intrinsics [B, W, V, 3, 3], cam_to_ref [B, W, V, 4, 4]) with W = stop - start."""
    cam_to_ref = camera_to_first_ego(
        cam_to_ego[:, start:stop].double(), ego_to_world[:, start:stop].double()
    ).float()
    return intrinsics[:, start:stop].float(), cam_to_ref
