"""Per-pixel camera rays and Plücker ray maps (torch).

Pixel (u, v) has its centre at (u + 0.5, v + 0.5). Directions are scaled so that their camera-frame z is 1,
so `origin + depth * direction` is the point at z-depth `depth`.
"""

from __future__ import annotations

import torch


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Homogeneous pixel centres [H, W, 3] = (u + 0.5, v + 0.5, 1)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=-1)


def camera_rays(
    intrinsics: torch.Tensor, cam_to_world: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of every pixel.

    intrinsics [..., 3, 3] (pixels for an image of height x width), cam_to_world [..., 4, 4] (OpenCV camera)
    -> origins [..., H, W, 3], directions [..., H, W, 3] in the world frame, camera-frame z of each direction = 1.
    """
    dtype = torch.promote_types(intrinsics.dtype, torch.float32)
    pix = pixel_grid(height, width, device=intrinsics.device, dtype=dtype)
    k_inv = torch.linalg.inv(intrinsics.to(dtype))
    dirs_cam = torch.einsum("...ij,hwj->...hwi", k_inv, pix)
    rot = cam_to_world[..., :3, :3].to(dtype)
    dirs = torch.einsum("...ij,...hwj->...hwi", rot, dirs_cam)
    origins = cam_to_world[..., None, None, :3, 3].to(dtype).expand_as(dirs)
    return origins, dirs


def plucker_rays(
    intrinsics: torch.Tensor, cam_to_world: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Plücker ray map [..., 6, H, W] = (o x d_hat, d_hat) with d_hat the unit ray direction (world frame).
    At least float32, also under autocast (geometry in bf16 loses centimetres and mixes dtypes)."""
    dtype = torch.promote_types(intrinsics.dtype, torch.float32)
    with torch.autocast(intrinsics.device.type, enabled=False):
        origins, dirs = camera_rays(intrinsics.to(dtype), cam_to_world.to(dtype), height, width)
        d_hat = torch.nn.functional.normalize(dirs, dim=-1)
        moment = torch.linalg.cross(origins, d_hat, dim=-1)
    return torch.cat([moment, d_hat], dim=-1).movedim(-1, -3)
