"""Few-step sampling of the next latent frame(s) behind clean reference frames, with per-environment noise.

Same rectified-flow Euler sampling as `WorldModel.generate`, but the initial noise is given by the caller (one
seeded generator per environment, so a slot's frames do not depend on which other slots share the batch) and
classifier-free guidance can run its two branches as one batched forward or as two forwards.
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.pipelines import WorldModel


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
) -> torch.Tensor:
    """references [B, k, V, C, h, w] (clean, timestep 0) or None, noise [B, n, V, C, h, w]; `cond` covers the
    k + n frames -> the n new latent frames [B, n, V, C, h, w]. `dit` is `model.dit` or a compiled wrapper.
    The DiT runs under bfloat16 autocast on CUDA, and on CPU with `cpu_bf16`."""
    k = 0 if references is None else references.shape[1]
    b, n, v = noise.shape[:3]
    device = model.device
    refs = None if references is None else references.to(device)
    x = noise.to(device) if refs is None else torch.cat([refs, noise.to(device)], 1)
    is_ref = torch.zeros(b, k + n, v, dtype=torch.bool, device=device)
    is_ref[:, :k] = True
    use_cfg = guidance_scale > 1.0
    if use_cfg:
        null_hidden, null_pooled = model.encode_prompt([""])
        uncond = cond.unconditional(null_hidden, null_pooled)
        both = DiTConditions.concat(cond, uncond) if single_forward else None
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(num_steps, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" or cpu_bf16)
    for step in scheduler.timesteps:
        timesteps = torch.where(is_ref, 0.0, step.float())
        with autocast:
            if not use_cfg:
                pred = dit(x, timesteps, **cond.model_kwargs()).sample.float()
            elif single_forward:
                pred_c, pred_u = (
                    dit(torch.cat([x, x]), torch.cat([timesteps, timesteps]), **both.model_kwargs())
                    .sample.float()
                    .chunk(2)
                )
            else:
                pred_c = dit(x, timesteps, **cond.model_kwargs()).sample.float()
                pred_u = dit(x, timesteps, **uncond.model_kwargs()).sample.float()
        if use_cfg:
            pred = pred_u + guidance_scale * (pred_c - pred_u)
        x = scheduler.step(pred, step, x).prev_sample
        if refs is not None:
            x[:, :k] = refs
    return x[:, k:]
