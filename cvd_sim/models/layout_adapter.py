"""Layout adapter: per-camera box + map layout images -> residuals added to the tokens before the first MM-DiT blocks."""

from __future__ import annotations

import torch
from diffusers.models.adapter import AdapterBlock
from torch import nn


class LayoutAdapter(nn.Module):
    """PixelUnshuffle(latent_downscale) -> diffusers AdapterBlock -> patchify conv -> one zero-initialised 1x1 conv
    per target MM-DiT block (so an untrained adapter adds exactly zero)."""

    def __init__(
        self,
        dim: int,
        num_outputs: int,
        in_channels: int = 6,
        channels: int = 256,
        num_res_blocks: int = 2,
        latent_downscale: int = 8,
        patch_size: int = 2,
    ):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(latent_downscale)
        self.body = AdapterBlock(in_channels * latent_downscale**2, channels, num_res_blocks)
        self.patchify = nn.Conv2d(channels, channels, kernel_size=patch_size, stride=patch_size)
        self.outputs = nn.ModuleList(nn.Conv2d(channels, dim, kernel_size=1) for _ in range(num_outputs))
        for conv in self.outputs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, layout: torch.Tensor) -> list[torch.Tensor]:
        """layout [N, C_layout, H, W] (H, W = latent size * latent_downscale) -> num_outputs x [N, hs * ws, dim]."""
        feats = self.patchify(self.body(self.unshuffle(layout)))
        return [conv(feats).flatten(2).transpose(1, 2) for conv in self.outputs]
