"""Temporal and cross-view blocks inserted after MM-DiT blocks (UniMLVG layout, no adaLN).

Structure of both: x + FF(LN x) -> + Attn(LN x) -> + FF(LN x), entered through a learned blend
`alpha * x + (1 - alpha) * block(x + emb)`; a sample whose block is disabled gets exactly `x` back.
Tokens are `[B, T, V, S, D]` with S = hs * ws patch tokens per image in row-major order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn


class TemporalKV:
    """Keys and values of the clean reference frames in one causal temporal block, cached across sampling steps.

    Empty, a block stores its keys/values [N, heads, k, head_dim] (N = B * V * S) here; filled, the block's
    (new) frames attend to them as to frames 0..k-1 in front of their own."""

    def __init__(self):
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def attend_with(
        self, key: torch.Tensor, value: torch.Tensor, causal: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """key, value [N, heads, n, head_dim] of the current frames -> (keys, values, mask) to attend over:
        unchanged (and stored) when empty, else the cached frames in front, with a bool mask [n, k + n] that
        lets current frame i see cached frames and current frames <= i when causal."""
        if self.keys is None:
            self.keys, self.values = key, value
            return key, value, None
        k, n = self.keys.shape[2], key.shape[2]
        mask = torch.ones(n, k + n, dtype=torch.bool, device=key.device).tril(k) if causal else None
        return torch.cat([self.keys, key], 2), torch.cat([self.values, value], 2), mask


class AxisAttnProcessor:
    """diffusers attention processor: SDPA with optional RMS qk-norm, keys/values from `encoder_hidden_states`
    when given, causal when the `Attention` module was built with `is_causal=True`; with `kv_cache`, reference
    keys/values are stored in it or read from it (see `TemporalKV`)."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        kv_cache: TemporalKV | None = None,
    ) -> torch.Tensor:
        """hidden_states [N, Lq, D], encoder_hidden_states [N, Lk, D] or None -> [N, Lq, D]."""
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        n = hidden_states.shape[0]

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(n, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        query, key, value = (
            heads(attn.to_q(hidden_states)),
            heads(attn.to_k(context)),
            heads(attn.to_v(context)),
        )
        if attn.norm_q is not None:
            query, key = attn.norm_q(query), attn.norm_k(key)
        is_causal = attn.is_causal and attention_mask is None
        if kv_cache is not None:
            key, value, cache_mask = kv_cache.attend_with(key, value, is_causal)
            if cache_mask is not None:
                attention_mask, is_causal = cache_mask, False
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, is_causal=is_causal)
        out = out.transpose(1, 2).reshape(n, -1, attn.heads * out.shape[-1]).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))


class _AxisBlock(nn.Module):
    """Shared body: FF -> attention along one axis -> FF, then the per-sample blend."""

    def __init__(self, dim: int, heads: int, qk_norm: str | None, blend_init: float, causal: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.ff1 = FeedForward(dim, activation_fn="gelu-approximate")
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(
            query_dim=dim,
            heads=heads,
            dim_head=dim // heads,
            bias=True,
            qk_norm=qk_norm,
            eps=1e-6,
            processor=AxisAttnProcessor(),
            is_causal=causal,
        )
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.ff2 = FeedForward(dim, activation_fn="gelu-approximate")
        self.blend_logit = nn.Parameter(torch.tensor(math.log(blend_init / (1.0 - blend_init))))

    def alpha(self) -> torch.Tensor:
        """Share of the block input kept in the output, in (0, 1)."""
        return torch.sigmoid(self.blend_logit)

    def _mix(self, normed: torch.Tensor, grid: tuple[int, int], **options) -> torch.Tensor:
        """Attention along the block's axis: normed tokens [B, T, V, S, D] -> [B, T, V, S, D]."""
        raise NotImplementedError

    def _body(self, x: torch.Tensor, grid: tuple[int, int], options: dict) -> torch.Tensor:
        x = x + self.ff1(self.norm1(x))
        x = x + self._mix(self.norm2(x), grid, **options)
        return x + self.ff2(self.norm3(x))

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, enabled: torch.Tensor, grid: tuple[int, int], **options
    ) -> torch.Tensor:
        """x [B, T, V, S, D], emb broadcastable to x, enabled [B] bool, grid (hs, ws) -> [B, T, V, S, D];
        options go to the attention (`kv_cache` of the temporal block)."""
        # Eager shortcut when every sample skips the block; under torch.compile the (equal) masked result is
        # computed instead, so the graph has no data-dependent branch.
        if not torch.compiler.is_compiling() and not bool(enabled.any()):
            return x
        alpha = self.alpha().to(x.dtype)
        blended = alpha * x + (1.0 - alpha) * self._body(x + emb, grid, options)
        return torch.where(enabled.view(-1, 1, 1, 1, 1), blended, x)


class TemporalBlock(_AxisBlock):
    """Attention along T for every (view, token) position ("pointwise": `(b v s) t d`); optionally causal,
    so frame t sees only frames <= t. With `kv_cache` (`TemporalKV`), the T frames follow cached frames."""

    def _mix(
        self, normed: torch.Tensor, grid: tuple[int, int], kv_cache: TemporalKV | None = None
    ) -> torch.Tensor:
        b, t, v, s, d = normed.shape
        seq = normed.permute(0, 2, 3, 1, 4).reshape(b * v * s, t, d)
        out = self.attn(seq) if kv_cache is None else self.attn(seq, kv_cache=kv_cache)
        return out.view(b, v, s, t, d).permute(0, 3, 1, 2, 4)


class CrossViewBlock(_AxisBlock):
    """Row-wise attention across views (`(b t h) (v w) d`): each view's token row attends to the same row of
    itself and of its two ring neighbours (all views when V <= 3). Identity when V == 1."""

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, enabled: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        if x.shape[2] == 1:
            return x
        return super().forward(x, emb, enabled, grid)

    def _mix(self, normed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, t, v, s, d = normed.shape
        hs, ws = grid
        rows = normed.view(b, t, v, hs, ws, d).permute(0, 1, 3, 2, 4, 5)  # [B, T, hs, V, ws, D]
        neighbours = (
            [rows, rows.roll(1, dims=3)] if v == 2 else [rows.roll(1, dims=3), rows, rows.roll(-1, dims=3)]
        )
        context = torch.cat(neighbours, dim=4)  # [B, T, hs, V, k*ws, D]
        out = self.attn(
            rows.reshape(-1, ws, d), encoder_hidden_states=context.reshape(-1, context.shape[4], d)
        )
        return out.view(b, t, hs, v, ws, d).permute(0, 1, 3, 2, 4, 5).reshape(b, t, v, s, d)
