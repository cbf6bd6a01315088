"""CVD-STORM DiT: diffusers' SD3 MM-DiT with temporal and cross-view blocks, per-image timesteps, camera rays,
a layout adapter and frame/view embeddings, over multi-view video latents `[B, T, V, C, h, w]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_sd3 import SD3Transformer2DModel
from torch import nn

from cvd_sim.models.camera_embedding import CameraRayEmbedding
from cvd_sim.models.dit_blocks import CrossViewBlock, TemporalBlock, TemporalKV
from cvd_sim.models.dit_config import DiTConfig, dit_config
from cvd_sim.models.layout_adapter import LayoutAdapter


def _per_image(x: torch.Tensor, base_ndim: int, b: int, t: int, v: int) -> torch.Tensor:
    """Condition [B, *rest] (shared by all images) or [B, T, V, *rest] -> [B*T*V, *rest]."""
    if x.ndim == base_ndim:
        return x.repeat_interleave(t * v, dim=0)
    if x.ndim == base_ndim + 2 and x.shape[:3] == (b, t, v):
        return x.reshape(b * t * v, *x.shape[3:])
    raise ValueError(
        f"condition of shape {tuple(x.shape)} is neither [B, ...] nor [B, T, V, ...] for {(b, t, v)}"
    )


@dataclass
class ReferenceCache:
    """Per temporal layer, the keys/values of k clean reference frames (B samples, V views), made by
    `CVDStormDiT.cache_references`; only valid for a causal model, whose reference frames never see later ones."""

    num_frames: int
    batch_size: int
    num_views: int
    layers: dict[str, TemporalKV] = field(default_factory=dict)
    filled: bool = False


class CVDStormDiT(SD3Transformer2DModel):
    """SD3 MM-DiT attends within each image; a temporal block (along T) and a cross-view block (along V, ring
    neighbours) follow the MM-DiT blocks listed in the config (default: every block). Save/load with diffusers'
    `save_pretrained` / `from_pretrained`; SD3.5 MM-DiT weights load with `from_sd3`."""

    _no_split_modules: ClassVar[list[str]] = ["JointTransformerBlock", "TemporalBlock", "CrossViewBlock"]

    @register_to_config
    def __init__(
        self,
        sample_size: int = 128,
        patch_size: int = 2,
        in_channels: int = 16,
        num_layers: int = 24,
        attention_head_dim: int = 64,
        num_attention_heads: int = 24,
        joint_attention_dim: int = 4096,
        caption_projection_dim: int = 1536,
        pooled_projection_dim: int = 2048,
        out_channels: int = 16,
        pos_embed_max_size: int = 384,
        dual_attention_layers: tuple[int, ...] = (),
        qk_norm: str | None = "rms_norm",
        temporal_block_layers: tuple[int, ...] | None = None,
        crossview_block_layers: tuple[int, ...] | None = None,
        new_block_heads: int | None = None,
        causal_temporal: bool = False,
        blend_init: float = 0.88,
        max_views: int = 8,
        camera_origin_octaves: int = 8,
        camera_direction_octaves: int = 4,
        camera_origin_scale: float = 100.0,
        layout_channels: int = 6,
        layout_adapter_channels: int = 256,
        layout_adapter_res_blocks: int = 2,
        layout_blocks: int = 6,
        latent_downscale: int = 8,
    ):
        cfg = DiTConfig(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__(
            sample_size=sample_size,
            patch_size=patch_size,
            in_channels=in_channels,
            num_layers=num_layers,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            joint_attention_dim=joint_attention_dim,
            caption_projection_dim=caption_projection_dim,
            pooled_projection_dim=pooled_projection_dim,
            out_channels=out_channels,
            pos_embed_max_size=pos_embed_max_size,
            dual_attention_layers=tuple(dual_attention_layers),
            qk_norm=qk_norm,
        )
        dim = self.inner_dim
        heads = cfg.new_block_heads or num_attention_heads
        all_layers = tuple(range(num_layers))
        self.temporal_layers = tuple(
            all_layers if cfg.temporal_block_layers is None else cfg.temporal_block_layers
        )
        self.crossview_layers = tuple(
            all_layers if cfg.crossview_block_layers is None else cfg.crossview_block_layers
        )
        self.temporal_blocks = nn.ModuleDict(
            {
                str(i): TemporalBlock(dim, heads, qk_norm, blend_init, causal=causal_temporal)
                for i in self.temporal_layers
            }
        )
        self.crossview_blocks = nn.ModuleDict(
            {str(i): CrossViewBlock(dim, heads, qk_norm, blend_init) for i in self.crossview_layers}
        )
        self.frame_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.frame_embedding = TimestepEmbedding(256, dim)
        self.view_embedding = nn.Embedding(max_views, dim)
        self.camera_embedding = CameraRayEmbedding(
            dim, camera_origin_octaves, camera_direction_octaves, camera_origin_scale
        )
        self.layout_adapter = (
            LayoutAdapter(
                dim,
                layout_blocks,
                layout_channels,
                layout_adapter_channels,
                layout_adapter_res_blocks,
                latent_downscale,
                patch_size,
            )
            if layout_blocks > 0
            else None
        )

    @classmethod
    def from_preset(cls, preset: str = "tiny", **overrides) -> CVDStormDiT:
        """Build from a named preset (`tiny`, `full`) with field overrides (validated by `DiTConfig`)."""
        return cls(**dit_config(preset, **overrides).model_dump())

    @classmethod
    def from_sd3(cls, folder, **overrides) -> CVDStormDiT:
        """MM-DiT weights and config from a local diffusers SD3/SD3.5 transformer folder; new parts stay fresh."""
        from cvd_sim.models.dit_sd3_weights import load_sd3_mmdit

        return load_sd3_mmdit(cls, folder, **overrides)

    def _checkpointed(self, module: nn.Module, *args):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)

    @torch.no_grad()
    def cache_references(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        **conditions,
    ) -> ReferenceCache:
        """Run the k clean reference frames once and keep their temporal keys/values, so that the sampling
        steps run only the new frames (`forward(..., reference_cache=...)`). Needs `causal_temporal`.

        latents [B, k, V, C, h, w], timesteps [B, k, V] (0 for clean frames); the conditions are `forward`'s,
        per-image ones over these k frames."""
        if not self.config.causal_temporal:
            raise ValueError(
                "reference caching needs a model with causal_temporal=True: with bidirectional temporal "
                "attention the reference frames' hidden states depend on the frames being generated"
            )
        b, k, v = latents.shape[:3]
        cache = ReferenceCache(k, b, v, {key: TemporalKV() for key in self.temporal_blocks})
        self.forward(latents, timesteps, encoder_hidden_states, reference_cache=cache, **conditions)
        cache.filled = True
        return cache

    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        layout: torch.Tensor | None = None,
        intrinsics: torch.Tensor | None = None,
        cam_to_ref: torch.Tensor | None = None,
        camera_mask: torch.Tensor | None = None,
        temporal_enabled: torch.Tensor | None = None,
        crossview_enabled: torch.Tensor | None = None,
        return_dict: bool = True,
        reference_cache: ReferenceCache | None = None,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        """Velocity prediction for every image.

        latents [B, T, V, C, h, w]; timesteps [B, T, V] (sigma * 1000, 0 = clean reference);
        encoder_hidden_states [B, L, joint_attention_dim] or per image [B, T, V, L, ...];
        pooled_projections [B, pooled_projection_dim] or [B, T, V, ...];
        layout [B, T, V, layout_channels, h * 8, w * 8] or None; intrinsics [B, T, V, 3, 3] (pixels of the
        h * 8 x w * 8 image) and cam_to_ref [B, T, V, 4, 4] (camera -> first frame's ego) or None;
        camera_mask [B] (0 drops the camera condition); temporal_enabled / crossview_enabled [B] bool
        (False = block skipped for that sample, default all True) -> sample [B, T, V, out_channels, h, w].
        reference_cache (from `cache_references`): the T frames are the ones after its k cached reference
        frames (frame indices k..k+T-1, per-image conditions over these T frames).
        """
        b, t, v, c, h, w = latents.shape
        first_frame, layer_caches = 0, {}
        if reference_cache is not None:
            if (reference_cache.batch_size, reference_cache.num_views) != (b, v):
                raise ValueError(
                    f"reference cache of batch {reference_cache.batch_size} x {reference_cache.num_views} views "
                    f"used for latents of batch {b} x {v} views"
                )
            first_frame = reference_cache.num_frames if reference_cache.filled else 0
            layer_caches = reference_cache.layers
        n, p, ds = b * t * v, self.config.patch_size, self.config.latent_downscale
        if h % p or w % p:
            raise ValueError(f"latent size {h}x{w} is not divisible by the patch size {p}")
        if v > self.config.max_views:
            raise ValueError(f"{v} views exceed max_views={self.config.max_views}")
        grid = (h // p, w // p)
        device = latents.device

        x = self.pos_embed(latents.reshape(n, c, h, w)).contiguous()  # [N, S, D]
        if intrinsics is not None and cam_to_ref is not None:
            cam = self.camera_embedding(
                intrinsics.reshape(n, 3, 3), cam_to_ref.reshape(n, 4, 4), (h * ds, w * ds), grid
            )
            if camera_mask is not None:
                cam = cam * camera_mask.to(cam.dtype).repeat_interleave(t * v).view(n, 1, 1)
            x = x + cam.to(x.dtype)
        temb = self.time_text_embed(timesteps.reshape(n), _per_image(pooled_projections, 2, b, t, v))
        context = self.context_embedder(encoder_hidden_states)
        context = _per_image(context, 3, b, t, v)
        residuals = []
        if self.layout_adapter is not None and layout is not None:
            residuals = self.layout_adapter(layout.reshape(n, *layout.shape[3:]).to(x.dtype))

        frame_emb = self.frame_embedding(
            self.frame_proj(torch.arange(first_frame, first_frame + t, device=device)).to(x.dtype)
        )
        frame_emb = frame_emb.view(1, t, 1, 1, -1)
        view_emb = self.view_embedding(torch.arange(v, device=device)).view(1, 1, v, 1, -1)
        enabled_all = torch.ones(b, dtype=torch.bool, device=device)
        temporal_enabled = (
            enabled_all if temporal_enabled is None else temporal_enabled.to(device, torch.bool)
        )
        crossview_enabled = (
            enabled_all if crossview_enabled is None else crossview_enabled.to(device, torch.bool)
        )

        for index, block in enumerate(self.transformer_blocks):
            if index < len(residuals):
                x = x + residuals[index]
            context, x = self._checkpointed(block, x, context, temb)
            key = str(index)
            if key in self.temporal_blocks:
                tokens = x.view(b, t, v, *x.shape[1:])
                if key in layer_caches:
                    tokens = self.temporal_blocks[key](
                        tokens, frame_emb, temporal_enabled, grid, kv_cache=layer_caches[key]
                    )
                else:
                    tokens = self._checkpointed(
                        self.temporal_blocks[key], tokens, frame_emb, temporal_enabled, grid
                    )
                x = tokens.reshape(n, *x.shape[1:])
            if key in self.crossview_blocks:
                tokens = x.view(b, t, v, *x.shape[1:])
                tokens = self._checkpointed(
                    self.crossview_blocks[key], tokens, view_emb, crossview_enabled, grid
                )
                x = tokens.reshape(n, *x.shape[1:])

        x = self.proj_out(self.norm_out(x, temb))
        x = x.view(n, grid[0], grid[1], p, p, self.out_channels)
        out = torch.einsum("nhwpqc->nchpwq", x).reshape(b, t, v, self.out_channels, h, w)
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)
