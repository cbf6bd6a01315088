"""Helpers for benchmarking the world-model backend: the model folder to time, and the speed techniques
(each a change of `WorldModelOptions` from the fast defaults) that `cvd-sim bench env` measures."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cvd_sim.envs.worldmodel_options import WorldModelOptions
from cvd_sim.envs.worldmodel_random import save_random_world_model

# name -> (what is compared, options with the technique ON, options with it OFF), both over the fast defaults
TECHNIQUES: dict[str, tuple[str, dict, dict]] = {
    "few-step sampling": ("3 steps vs 50", {}, {"num_steps": 50}),
    "CFG off": ("no guidance vs CFG 3.5 (batched branches)", {}, {"guidance_scale": 3.5}),
    "CFG single forward": (
        "CFG 3.5: cond+uncond in one batched forward vs two forwards",
        {"guidance_scale": 3.5},
        {"guidance_scale": 3.5, "cfg_single_forward": False},
    ),
    "reference cache": (
        "references run once per env step vs at every sampling step (causal DiT)",
        {"reference_cache": True},
        {"reference_cache": False},
    ),
    "ray depth": ("own-ray Gaussian depth vs splatting 3 context frames", {"depth": "ray"}, {}),
    "channels-last VAE": ("channels-last VAE vs contiguous", {}, {"channels_last": False}),
    "bf16 autocast on CPU": (
        "bfloat16 DiT and VAE decode vs float32",
        {"cpu_bf16": True},
        {"cpu_bf16": False},
    ),
    "torch.compile DiT": ("compiled vs eager DiT (after compiling)", {"compile": True}, {}),
}


def model_for_bench(model: str | None) -> tuple[str, str]:
    """(folder, description): the given folder, else the shipped checkpoint, else a freshly saved random-weight
    tiny model (same architecture, causal temporal attention and cost as the trained one)."""
    if model:
        return model, f"model {model}"
    try:
        return str(WorldModelOptions().model_folder()), "shipped tiny checkpoint"
    except FileNotFoundError:
        folder = Path(tempfile.mkdtemp(prefix="cvd-sim-bench-")) / "tiny-random"
        save_random_world_model(folder, causal=True)
        return str(folder), "random-weight causal tiny model (no shipped checkpoint yet)"
