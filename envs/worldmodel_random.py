"""Randomly initialised WorldModels from the tiny presets: what tests and benchmarks run before a trained
checkpoint exists (same architecture and cost as the trained tiny model, meaningless pictures)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.models.text_encoder import ByteTextEncoder
from cvd_sim.pipelines import WorldModel

# A smaller DiT than `tiny` for fast tests (same code paths).
MICRO_DIT = {
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "caption_projection_dim": 32,
    "joint_attention_dim": 32,
    "pooled_projection_dim": 32,
    "layout_adapter_channels": 16,
    "layout_blocks": 1,
}
MICRO_VAE = {"block_out_channels": [16, 16, 16, 16]}
MICRO_DECODER = {
    "width": 32,
    "depth": 1,
    "num_heads": 2,
    "key_upsampler_channels": [16, 16, 16],
    "sky_hidden": 16,
}


def random_world_model(
    seed: int = 0, micro: bool = False, causal: bool = False, distilled: bool = False
) -> WorldModel:
    """A WorldModel with the tiny presets (or the smaller `micro` parts, for tests) and random weights, seeded;
    `causal` = DiT with causal temporal attention (as the shipped tiny DiT is trained); `distilled` = with a
    second random DiT as `dit_distilled` (as the shipped folder has)."""
    torch.manual_seed(seed)
    dit = CVDStormDiT.from_preset("tiny", causal_temporal=causal, **(MICRO_DIT if micro else {}))
    text_width = dit.config.joint_attention_dim
    text_encoder = ByteTextEncoder(
        max_length=32,
        width=text_width,
        num_layers=1,
        num_heads=2,
        pooled_dim=dit.config.pooled_projection_dim,
    )
    storm_vae = (
        StormVAE.from_preset("tiny", vae_overrides=MICRO_VAE, **MICRO_DECODER)
        if micro
        else StormVAE.from_preset("tiny")
    )
    student = CVDStormDiT.from_config(dit.config) if distilled else None
    return WorldModel(storm_vae, dit, text_encoder, FlowMatchEulerDiscreteScheduler(), student)


def save_random_world_model(
    folder: str | Path, seed: int = 0, micro: bool = False, causal: bool = False, distilled: bool = False
) -> Path:
    """Write `random_world_model(seed, micro, causal, distilled)` to folder (WorldModel layout); returns it."""
    folder = Path(folder)
    random_world_model(seed, micro, causal, distilled).save_pretrained(folder)
    return folder
