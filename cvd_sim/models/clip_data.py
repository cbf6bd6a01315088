"""Opening a nuScenes-layout folder as STORM-VAE clips, with a fixed held-out split of scenes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

Split = Literal["all", "train", "val"]
HOLDOUT_EVERY = 10  # scene i (sorted by name) is held out when i % 10 == 9


def split_scenes(names: list[str], split: Split) -> list[str]:
    """Deterministic split: every 10th scene by name is `val`, the rest `train`; `all` keeps every scene."""
    ordered = sorted(names)
    if split == "all":
        return ordered
    held = {n for i, n in enumerate(ordered) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1}
    return [n for n in ordered if (n in held) == (split == "val")]


def open_clips(
    root: str | Path,
    version: str,
    split: Split,
    num_frames: int,
    height: int,
    width: int,
    clip_stride: int | None = None,
) -> Dataset:
    """`cvd_sim.data.nuscenes_clips.NuScenesClips` over the scenes of `split` (clip dicts, DESIGN contract)."""
    from nuscenes.nuscenes import NuScenes

    from cvd_sim.data.nuscenes_clips import NuScenesClips

    nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    scenes = split_scenes([s["name"] for s in nusc.scene], split)
    if not scenes:
        raise ValueError(f"{root}: split {split!r} has no scenes ({len(nusc.scene)} scenes in {version})")
    return NuScenesClips(
        str(root),
        version=version,
        num_frames=num_frames,
        height=height,
        width=width,
        clip_stride=clip_stride,
        scenes=scenes,
        nusc=nusc,
    )
