"""Helpers for benchmarking the world-model backend: the model folder to time, and the speed techniques
(each a change of `WorldModelOptions` from the fast defaults) that `cvd-sim bench env` measures."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cvd_sim.envs.worldmodel_options import WorldModelOptions
from cvd_sim.envs.worldmodel_random import save_random_world_model

# name -> (what is compared, options with the technique ON, options with it OFF), both over the fast defaults
TECHNIQUES: dict[str, tuple[str, dict, dict]] = {
    "few-step sampling": (
        "3 steps vs 50 (the DiT itself)",
        {"distilled": False},
        {"distilled": False, "num_steps": 50},
    ),
    "distilled one step": ("distilled DiT, 1 step vs the DiT, 3 steps", {}, {"distilled": False}),
    "CFG off": ("no guidance vs CFG 3.5 (batched branches)", {}, {"guidance_scale": 3.5}),
    "CFG single forward": (
        "CFG 3.5: cond+uncond in one batched forward vs two forwards",
        {"guidance_scale": 3.5},
        {"guidance_scale": 3.5, "cfg_single_forward": False},
    ),
    "reference cache": (
        "the DiT itself, 3 steps: references run once per env step vs at every sampling step (causal DiT)",
        {"distilled": False, "reference_cache": True},
        {"distilled": False, "reference_cache": False},
    ),
    "one pass at 1 step": (
        "1 step: the window in one pass vs references cached and then the new frame",
        {},
        {"reference_cache": True},
    ),
    "depth from 2 latents": (
        "Gaussian depth splatted from the last 2 latents vs 3",
        {},
        {"depth_context": 3},
    ),
    "ray depth": ("own-ray Gaussian depth vs splatting the last 2 latents", {"depth": "ray"}, {}),
    "channels-last VAE": ("channels-last VAE vs contiguous", {}, {"channels_last": False}),
    "bf16 autocast on CPU": (
        "bfloat16 DiT, VAE decode and Gaussian ViT vs float32",
        {"cpu_bf16": True},
        {"cpu_bf16": False},
    ),
    "torch.compile DiT": ("compiled vs eager DiT (after compiling)", {"compile": True}, {}),
}


def model_for_bench(model: str | None) -> tuple[str, str]:
    """(folder, description): the given folder, else the shipped checkpoint, else a freshly saved random-weight
    tiny model (same architecture, causal temporal attention, distilled DiT and cost as the trained one)."""
    if model:
        return model, f"model {model}"
    try:
        return str(WorldModelOptions().model_folder()), "shipped tiny checkpoint"
    except FileNotFoundError:
        folder = Path(tempfile.mkdtemp(prefix="cvd-sim-bench-")) / "tiny-random"
        save_random_world_model(folder, causal=True, distilled=True)
        return str(folder), "random-weight causal tiny model with a distilled DiT (no shipped checkpoint yet)"
