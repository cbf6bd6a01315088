"""Parameter-free embeddings shared by the models: sinusoidal time, 2D sin-cos positions, Fourier features."""

from __future__ import annotations

import math

import torch


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of scalars.

    values [...] (any float) -> [..., dim]; dim must be even.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding: dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half
    )
    angles = values.float()[..., None] * freqs
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def sincos_position_embedding_2d(height: int, width: int, dim: int, device=None) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding of a token grid (half the channels for rows, half for columns).

    -> [height * width, dim], row-major; dim must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"sincos_position_embedding_2d: dim must be divisible by 4, got {dim}")
    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
    emb_r = sinusoidal_embedding(grid_r.reshape(-1), dim // 2, max_period=100.0)
    emb_c = sinusoidal_embedding(grid_c.reshape(-1), dim // 2, max_period=100.0)
    return torch.cat([emb_r, emb_c], dim=-1)


def fourier_features(x: torch.Tensor, num_octaves: int) -> torch.Tensor:
    """NeRF-style Fourier features: [..., D] -> [..., D * (1 + 2 * num_octaves)] (input, then sin/cos per octave)."""
    freqs = (2.0 ** torch.arange(num_octaves, device=x.device, dtype=x.dtype)) * math.pi
    angles = x[..., None] * freqs  # [..., D, O]
    feats = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
    return torch.cat([x, feats], dim=-1)
