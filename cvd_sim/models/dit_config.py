"""Typed architecture config of the CVD-STORM DiT, with the `tiny` and `full` presets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# SD3.5-medium MM-DiT (stabilityai/stable-diffusion-3.5-medium, transformer/config.json).
SD35_MEDIUM_MMDIT = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 384,
    "dual_attention_layers": tuple(range(13)),
    "qk_norm": "rms_norm",
}


class DiTConfig(BaseModel):
    """Every constructor argument of `CVDStormDiT`; `None` layer lists mean "after every MM-DiT block"."""

    model_config = ConfigDict(extra="forbid")

    # MM-DiT part (diffusers SD3Transformer2DModel arguments).
    sample_size: int = Field(128, ge=1)
    patch_size: int = Field(2, ge=1)
    in_channels: int = Field(16, ge=1)
    num_layers: int = Field(24, ge=1)
    attention_head_dim: int = Field(64, ge=1)
    num_attention_heads: int = Field(24, ge=1)
    joint_attention_dim: int = Field(4096, ge=1)
    caption_projection_dim: int = Field(1536, ge=1)
    pooled_projection_dim: int = Field(2048, ge=1)
    out_channels: int = Field(16, ge=1)
    pos_embed_max_size: int = Field(384, ge=1)
    dual_attention_layers: tuple[int, ...] = ()
    qk_norm: Literal["rms_norm", "layer_norm"] | None = "rms_norm"
    # Temporal / cross-view blocks.
    temporal_block_layers: tuple[int, ...] | None = None
    crossview_block_layers: tuple[int, ...] | None = None
    new_block_heads: int | None = Field(
        None, ge=1, description="heads of the new blocks; default = MM-DiT heads"
    )
    causal_temporal: bool = False
    blend_init: float = Field(0.88, gt=0.0, lt=1.0, description="initial alpha = share of the block input")
    max_views: int = Field(8, ge=1)
    # Conditions.
    camera_origin_octaves: int = Field(8, ge=1)
    camera_direction_octaves: int = Field(4, ge=1)
    camera_origin_scale: float = Field(100.0, gt=0, description="metres mapped to 1 before Fourier features")
    layout_channels: int = Field(6, ge=1)
    layout_adapter_channels: int = Field(256, ge=1)
    layout_adapter_res_blocks: int = Field(2, ge=1)
    layout_blocks: int = Field(6, ge=0, description="layout residuals are added before MM-DiT blocks 0..n-1")
    latent_downscale: int = Field(8, ge=1, description="image pixels per latent pixel (VAE factor)")

    @model_validator(mode="after")
    def _check(self) -> DiTConfig:
        width = self.num_attention_heads * self.attention_head_dim
        if self.caption_projection_dim != width:
            raise ValueError(
                f"caption_projection_dim must equal heads * head_dim = {width} (joint attention)"
            )
        heads = self.new_block_heads or self.num_attention_heads
        if width % heads:
            raise ValueError(f"new_block_heads={heads} must divide the width {width}")
        if self.layout_blocks > self.num_layers:
            raise ValueError(f"layout_blocks={self.layout_blocks} exceeds num_layers={self.num_layers}")
        for name in ("dual_attention_layers", "temporal_block_layers", "crossview_block_layers"):
            layers = getattr(self, name) or ()
            bad = [i for i in layers if not 0 <= i < self.num_layers]
            if bad:
                raise ValueError(f"{name}: layers {bad} outside 0..{self.num_layers - 1}")
        return self


DIT_PRESETS: dict[str, dict] = {
    # The paper's architecture: SD3.5-medium plus a temporal and a cross-view block after every MM-DiT block.
    "full": {**SD35_MEDIUM_MMDIT, "layout_adapter_channels": 320, "layout_blocks": 6},
    # Trains on a 2-core CPU at 64x112 images (8x14 latents, 4x7 tokens per image).
    "tiny": {
        "sample_size": 16,
        "patch_size": 2,
        "in_channels": 16,
        "num_layers": 4,
        "attention_head_dim": 32,
        "num_attention_heads": 4,
        "joint_attention_dim": 128,
        "caption_projection_dim": 128,
        "pooled_projection_dim": 128,
        "out_channels": 16,
        "pos_embed_max_size": 48,
        "dual_attention_layers": (0,),
        "qk_norm": "rms_norm",
        "layout_adapter_channels": 64,
        "layout_adapter_res_blocks": 1,
        "layout_blocks": 2,
    },
}


def dit_config(preset: str = "tiny", **overrides) -> DiTConfig:
    """A validated config from a preset name (`tiny`, `full`) with field overrides."""
    if preset not in DIT_PRESETS:
        raise ValueError(f"unknown DiT preset {preset!r}; choose from {sorted(DIT_PRESETS)}")
    return DiTConfig(**{**DIT_PRESETS[preset], **overrides})
