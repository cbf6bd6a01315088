"""Cameras of chosen clip frames relative to a reference frame's ego pose (what the Gaussian decoder reads)."""

from __future__ import annotations

import torch


def clip_cameras(
    clip: dict[str, torch.Tensor], frames: torch.Tensor, ref_frame: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched clip dict (DESIGN clip contract, [B, T, ...]) and frame indices [K] ->
    intrinsics [B, K, V, 3, 3], cam_to_ref [B, K, V, 4, 4] (camera -> ego pose of `ref_frame`, metres),
    times [B, K] seconds since `ref_frame`. Poses are composed in float64 and returned as float32.
    """
    frames = frames.to(clip["intrinsics"].device)
    ego_to_world = clip["ego_to_world"].double()  # [B, T, 4, 4]
    world_to_ref = torch.linalg.inv(ego_to_world[:, ref_frame])  # [B, 4, 4]
    cam_to_world = ego_to_world[:, frames, None] @ clip["cam_to_ego"][:, frames].double()  # [B, K, V, 4, 4]
    cam_to_ref = world_to_ref[:, None, None] @ cam_to_world
    stamps = clip["timestamps"].double()
    times = stamps[:, frames] - stamps[:, ref_frame : ref_frame + 1]
    return clip["intrinsics"][:, frames].float(), cam_to_ref.float(), times.float()
