"""Overfitting one tiny clip in latent space with the rectified-flow step, then sampling it back (slow)."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.models.rectified_flow import RectifiedFlowConfig, rectified_flow_step

STEPS = 800


def smooth_clip(generator: torch.Generator, t: int = 3, v: int = 2) -> torch.Tensor:
    """A [1, T, V, 16, 8, 14] latent clip: one smooth random field panned across frames and views."""
    field = torch.nn.functional.interpolate(
        torch.randn(1, 16, 4, 12, generator=generator), size=(8, 24), mode="bilinear"
    )
    frames = [
        torch.stack([field[0, :, :, f + 3 * view : f + 3 * view + 14] for view in range(v)]) for f in range(t)
    ]
    return torch.stack(frames)[None]


@pytest.fixture
def one_thread():
    """Small matmuls on a shared 2-core machine run far faster on one thread than with oversubscribed OpenMP."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_overfit_one_clip(one_thread):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = CVDStormDiT.from_preset("tiny")
    clip = smooth_clip(g)
    width = model.config.joint_attention_dim
    cond = DiTConditions(torch.zeros(1, 8, width), torch.zeros(1, width))
    cfg = RectifiedFlowConfig(
        reference_probs=(0.5, 0.5), keep_text=1, keep_camera=1, disable_temporal=0, disable_crossview=0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, STEPS)
    losses = []
    for _ in range(STEPS):
        loss, _ = rectified_flow_step(model, clip, cond, cond.text_hidden, cond.text_pooled, cfg, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-50:]) / 50
    print(f"rectified-flow loss {first:.3f} -> {last:.3f} over {STEPS} steps")
    assert last < 0.1 * first

    # Sample frames 1.. from frame 0 as the reference with 20 Euler steps.
    model.eval()
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(20)
    x = torch.randn(clip.shape, generator=g)
    x[:, :1] = clip[:, :1]
    with torch.no_grad():
        for step in scheduler.timesteps:
            timesteps = torch.full(clip.shape[:3], float(step))
            timesteps[:, :1] = 0.0
            velocity = model(x, timesteps, cond.text_hidden, cond.text_pooled).sample
            x = scheduler.step(velocity, step, x).prev_sample
            x[:, :1] = clip[:, :1]
    relative_error = ((x - clip)[:, 1:].square().mean() / clip[:, 1:].square().mean()).item()
    print(f"sampled latents: relative squared error {relative_error:.4f}")
    assert relative_error < 0.05
