"""Camera condition of the DiT: per-token rays relative to the first frame's ego pose -> Fourier features -> linear."""

from __future__ import annotations

import math

import torch
from torch import nn

from cvd_sim.geometry.rays import camera_rays
from cvd_sim.geometry.transforms import invert_pose


def camera_to_first_ego(cam_to_ego: torch.Tensor, ego_to_world: torch.Tensor) -> torch.Tensor:
    """Camera poses relative to the first frame's ego pose.

    cam_to_ego [B, T, V, 4, 4], ego_to_world [B, T, 4, 4] -> cam_to_ref [B, T, V, 4, 4]
    = inv(ego_to_world[:, 0]) @ ego_to_world[:, t] @ cam_to_ego[:, t, v].
    """
    ego_to_ref = invert_pose(ego_to_world[:, :1]) @ ego_to_world  # [B, T, 4, 4]
    return ego_to_ref[:, :, None] @ cam_to_ego


def fourier_features(x: torch.Tensor, octaves: int) -> torch.Tensor:
    """x [..., C] -> [..., 2 * octaves * C]: sin and cos of pi * 2^k * x for k = 0..octaves-1."""
    freqs = math.pi * (2.0 ** torch.arange(octaves, device=x.device, dtype=x.dtype))
    angles = (x[..., None] * freqs).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class CameraRayEmbedding(nn.Module):
    """Fourier features of the ray origin (metres / origin_scale) and unit direction at every patch-token centre,
    projected to the model width. The projection is zero-initialised so a pretrained MM-DiT starts unchanged."""

    def __init__(
        self, dim: int, origin_octaves: int = 8, direction_octaves: int = 4, origin_scale: float = 100.0
    ):
        super().__init__()
        self.origin_octaves = origin_octaves
        self.direction_octaves = direction_octaves
        self.origin_scale = origin_scale
        self.proj = nn.Linear(6 * (origin_octaves + direction_octaves), dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(
        self,
        intrinsics: torch.Tensor,
        cam_to_ref: torch.Tensor,
        image_hw: tuple[int, int],
        token_hw: tuple[int, int],
    ) -> torch.Tensor:
        """intrinsics [..., 3, 3] for images of image_hw, cam_to_ref [..., 4, 4] -> [..., hs * ws, dim] for a
        token grid token_hw (each token covers image_hw / token_hw pixels; rays through the token centres)."""
        sy, sx = image_hw[0] / token_hw[0], image_hw[1] / token_hw[1]
        scale = torch.tensor([1.0 / sx, 1.0 / sy, 1.0], device=intrinsics.device, dtype=torch.float32)
        k_tokens = intrinsics.float() * scale[:, None]
        origins, dirs = camera_rays(k_tokens, cam_to_ref.float(), token_hw[0], token_hw[1])
        dirs = nn.functional.normalize(dirs, dim=-1)
        feats = torch.cat(
            [
                fourier_features(origins / self.origin_scale, self.origin_octaves),
                fourier_features(dirs, self.direction_octaves),
            ],
            dim=-1,
        )
        return self.proj(feats.flatten(-3, -2).to(self.proj.weight.dtype))
