"""Few-step sampling of the next latent frame(s) behind clean reference frames, with per-environment noise.

Same rectified-flow Euler sampling as `WorldModel.generate`, but the initial noise is given by the caller (one
seeded generator per environment, so a slot's frames do not depend on which other slots share the batch) and
classifier-free guidance can run its two branches as one batched forward or as two forwards. With a causal DiT
the reference frames run once per call, not at every step (`WindowDenoiser`).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.pipelines import WorldModel
from cvd_sim.pipelines.window_denoiser import WindowDenoiser, use_reference_cache


@torch.no_grad()
def sample_frames(
    model: WorldModel,
    dit,
    cond: DiTConditions,
    references: torch.Tensor | None,
    noise: torch.Tensor,
    num_steps: int,
    guidance_scale: float,
    single_forward: bool = True,
    cpu_bf16: bool = False,
    reference_cache: bool | None = None,
    shift: float | None = None,
) -> torch.Tensor:
    """references [B, k, V, C, h, w] (clean, timestep 0) or None, noise [B, n, V, C, h, w]; `cond` covers the
    k + n frames -> the n new latent frames [B, n, V, C, h, w]. `dit` is `model.dit` or a compiled wrapper.
    The DiT runs under bfloat16 autocast on CUDA, and on CPU with `cpu_bf16`. reference_cache: run the
    references once per call and only the new frames per step (causal DiT only; None = when causal and
    num_steps > 1).
    shift: the timestep shift of the Euler schedule, σ' = shift·σ / (1 + (shift - 1)·σ), which spends the few
    steps nearer pure noise for shift > 1 (None = the model's scheduler config)."""
    k = 0 if references is None else references.shape[1]
    device = model.device
    refs = None if references is None else references.to(device)
    x = noise.to(device)
    cache = use_reference_cache(model.dit.config, reference_cache, k, num_steps)
    autocast = torch.bfloat16 if device.type == "cuda" or cpu_bf16 else None
    use_cfg = guidance_scale > 1.0
    if not use_cfg:
        branches = [WindowDenoiser(dit, cond, refs, cache, autocast)]
    else:
        null_hidden, null_pooled = model.encode_prompt([""])
        uncond = cond.unconditional(null_hidden, null_pooled)
        if single_forward:
            both_refs = None if refs is None else torch.cat([refs, refs])
            branches = [WindowDenoiser(dit, DiTConditions.concat(cond, uncond), both_refs, cache, autocast)]
        else:
            branches = [WindowDenoiser(dit, c, refs, cache, autocast) for c in (cond, uncond)]
    overrides = {} if shift is None else {"shift": shift}
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.scheduler.config, **overrides)
    scheduler.set_timesteps(num_steps, device=device)
    for step in scheduler.timesteps:
        if not use_cfg:
            pred = branches[0](x, step)
        else:
            if single_forward:
                pred_c, pred_u = branches[0](torch.cat([x, x]), step).chunk(2)
            else:
                pred_c, pred_u = (branch(x, step) for branch in branches)
            pred = pred_u + guidance_scale * (pred_c - pred_u)
        x = scheduler.step(pred, step, x).prev_sample
    return x
