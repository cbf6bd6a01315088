"""Rectified-flow training step: sigmas, noising, reference-frame masking, CFG dropout, block disabling."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from pydantic import ValidationError
from test_dit_model import make_inputs, micro_dit

from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.models.rectified_flow import (
    RectifiedFlowConfig,
    drop_conditions,
    masked_velocity_loss,
    noisy_latents,
    rectified_flow_step,
    reference_mask,
    sample_reference_counts,
    sample_sigmas,
    shift_sigmas,
    velocity_target,
)


def test_shift_matches_diffusers_scheduler():
    unshifted = torch.linspace(1.0, 0.05, 10)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(sigmas=unshifted.tolist())  # the scheduler shifts the sigmas it is given
    torch.testing.assert_close(shift_sigmas(unshifted, 3.0), scheduler.sigmas[:-1], rtol=1e-5, atol=1e-6)


def test_sigmas_are_logit_normal():
    cfg = RectifiedFlowConfig(logit_mean=0.5, logit_std=0.8, shift=1.0)
    sigmas = sample_sigmas((20000,), cfg, torch.Generator().manual_seed(0)).double()
    logits = torch.log(sigmas / (1 - sigmas))
    assert abs(logits.mean().item() - 0.5) < 0.03
    assert abs(logits.std().item() - 0.8) < 0.03
    shifted = sample_sigmas((20000,), RectifiedFlowConfig(shift=3.0), torch.Generator().manual_seed(0))
    assert (
        shifted.mean()
        > sample_sigmas((20000,), RectifiedFlowConfig(), torch.Generator().manual_seed(0)).mean()
    )


def test_noising_and_velocity():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(1, 2, 3, 4, 2, 2, generator=g), torch.randn(1, 2, 3, 4, 2, 2, generator=g)
    zeros, ones = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    torch.testing.assert_close(noisy_latents(x0, noise, zeros), x0)
    torch.testing.assert_close(noisy_latents(x0, noise, ones), noise)
    sigma, eps = torch.full((1, 2, 3), 0.3), 1e-3
    slope = (noisy_latents(x0, noise, sigma + eps) - noisy_latents(x0, noise, sigma - eps)) / (2 * eps)
    torch.testing.assert_close(slope, velocity_target(x0, noise), rtol=1e-3, atol=1e-3)


def test_reference_counts_and_mask():
    counts = sample_reference_counts(20000, 8, (0.2, 0.08, 0.24, 0.48), torch.Generator().manual_seed(2))
    freq = torch.bincount(counts, minlength=4).double() / 20000
    torch.testing.assert_close(
        freq, torch.tensor([0.2, 0.08, 0.24, 0.48], dtype=torch.float64), atol=0.015, rtol=0
    )
    assert (
        sample_reference_counts(100, 2, (0.0, 0.0, 0.0, 1.0)).max() == 1
    )  # always leaves a frame to generate
    mask = reference_mask(torch.tensor([0, 2]), 4, 3)
    assert mask.shape == (2, 4, 3)
    assert not mask[0].any() and mask[1, :2].all() and not mask[1, 2:].any()


def test_masked_loss_is_exact():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 4, 2, 3, 2, 2, generator=g), torch.randn(2, 4, 2, 3, 2, 2, generator=g)
    loss_mask = ~reference_mask(torch.tensor([1, 3]), 4, 2)
    loss = masked_velocity_loss(pred, target, loss_mask)
    # Brute force: mean over the elements of the non-reference images.
    expected = torch.cat(
        [((pred - target) ** 2)[0, 1:].flatten(), ((pred - target) ** 2)[1, 3:].flatten()]
    ).mean()
    torch.testing.assert_close(loss, expected)
    perturbed = pred.clone()
    perturbed[0, 0] += 1e6
    perturbed[1, :3] = float("inf")
    assert masked_velocity_loss(perturbed, target, loss_mask).item() == loss.item()
    perturbed[1, 3] += 1.0
    assert masked_velocity_loss(perturbed, target, loss_mask).item() != loss.item()


def _conditions(inputs: dict) -> DiTConditions:
    return DiTConditions(
        text_hidden=inputs["encoder_hidden_states"],
        text_pooled=inputs["pooled_projections"],
        layout=inputs["layout"],
        intrinsics=inputs["intrinsics"],
        cam_to_ref=inputs["cam_to_ref"],
    )


class PerturbReferences(torch.nn.Module):
    """Wraps a DiT and adds a large offset to its prediction on images whose timestep is 0 (the references)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, latents, timesteps, **kwargs):
        out = self.model(latents, timesteps, **kwargs)
        out.sample = out.sample + 100.0 * (timesteps == 0)[..., None, None, None]
        return out


def test_training_step_ignores_reference_predictions():
    model = micro_dit(4)
    inputs = make_inputs(3, 4, 2, seed=4)
    cond = _conditions(inputs)
    null = (torch.zeros(1, 12, 32), torch.zeros(1, 32))
    cfg = RectifiedFlowConfig(reference_probs=(0.0, 0.0, 0.5, 0.5))

    def run(net):
        return rectified_flow_step(net, inputs["latents"], cond, *null, cfg, torch.Generator().manual_seed(5))

    loss, info = run(model)
    perturbed_loss, _ = run(PerturbReferences(model))
    assert info["reference_counts"].min() >= 2
    assert (info["sigmas"][~info["loss_mask"]] == 0).all() and (info["sigmas"][info["loss_mask"]] > 0).all()
    assert perturbed_loss.item() == loss.item()
    # The loss is the velocity MSE on the generated frames only.
    expected = masked_velocity_loss(info["pred"], info["target"], info["loss_mask"])
    assert loss.item() == expected.item()
    loss.backward()
    assert all(p.grad is not None for p in model.temporal_blocks.parameters())


def test_condition_dropout():
    g = torch.Generator().manual_seed(6)
    b = 4
    cond = DiTConditions(
        text_hidden=torch.randn(b, 5, 8, generator=g),
        text_pooled=torch.randn(b, 8, generator=g),
        layout=torch.rand(b, 2, 3, 6, 16, 16, generator=g) + 0.1,
    )
    null_hidden, null_pooled = torch.full((1, 5, 8), 7.0), torch.full((1, 8), 7.0)
    kept = drop_conditions(
        cond,
        null_hidden,
        null_pooled,
        RectifiedFlowConfig(keep_text=1, keep_boxes=1, keep_map=1, keep_camera=1),
    )
    torch.testing.assert_close(kept.text_hidden, cond.text_hidden)
    torch.testing.assert_close(kept.layout, cond.layout)
    assert (kept.camera_mask == 1).all()
    dropped = drop_conditions(
        cond,
        null_hidden,
        null_pooled,
        RectifiedFlowConfig(keep_text=0, keep_boxes=0, keep_map=0, keep_camera=0),
    )
    assert (dropped.text_hidden == 7).all() and (dropped.text_pooled == 7).all()
    assert (dropped.layout == 0).all() and (dropped.camera_mask == 0).all()
    boxes_only = drop_conditions(
        cond, null_hidden, null_pooled, RectifiedFlowConfig(keep_boxes=1, keep_map=0, box_channels=3)
    )
    torch.testing.assert_close(boxes_only.layout[:, :, :, :3], cond.layout[:, :, :, :3])
    assert (boxes_only.layout[:, :, :, 3:] == 0).all()
    # Per-sample independence at keep = 0.5: some samples keep the text, some drop it.
    many = DiTConditions(text_hidden=torch.ones(400, 1, 1), text_pooled=torch.ones(400, 1))
    half = drop_conditions(
        many, torch.zeros(1, 1, 1), torch.zeros(1, 1), RectifiedFlowConfig(keep_text=0.5), g
    )
    assert 150 < half.text_pooled.sum() < 250


def test_block_disabling_rates():
    model = micro_dit(7)
    inputs = make_inputs(1, 2, 2, seed=7)
    inputs["latents"] = inputs["latents"].expand(16, -1, -1, -1, -1, -1)
    cond = DiTConditions(
        text_hidden=inputs["encoder_hidden_states"].expand(16, -1, -1),
        text_pooled=inputs["pooled_projections"].expand(16, -1),
    )
    cfg = RectifiedFlowConfig(disable_temporal=1.0, disable_crossview=0.0)
    with torch.no_grad():
        _, info = rectified_flow_step(
            model, inputs["latents"], cond, torch.zeros(1, 12, 32), torch.zeros(1, 32), cfg
        )
    assert not info["temporal_enabled"].any() and info["crossview_enabled"].all()


def test_config_validation():
    with pytest.raises(ValidationError, match="reference_probs"):
        RectifiedFlowConfig(reference_probs=(0.5, 0.6))
    with pytest.raises(ValidationError, match="keep_text"):
        RectifiedFlowConfig(keep_text=1.5)


class RecordInputs(torch.nn.Module):
    """Wraps a DiT and keeps the latents and timesteps it was called with."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.seen = model, {}

    def forward(self, latents, timesteps, **kwargs):
        self.seen = {"latents": latents.detach().clone(), "timesteps": timesteps.detach().clone()}
        return self.model(latents, timesteps, **kwargs)


def test_reference_noise_augments_references_and_keeps_them_out_of_the_loss():
    model = micro_dit(4)
    inputs = make_inputs(3, 4, 2, seed=6)
    x0 = inputs["latents"]
    cond = _conditions(inputs)
    null = (torch.zeros(1, 12, 32), torch.zeros(1, 32))
    cfg = RectifiedFlowConfig(reference_probs=(0.0, 0.0, 0.5, 0.5), reference_noise=0.2)
    recorder = RecordInputs(model)
    loss, info = rectified_flow_step(recorder, x0, cond, *null, cfg, torch.Generator().manual_seed(7))
    is_ref = ~info["loss_mask"]
    ref_sigmas = info["sigmas"][is_ref]
    assert is_ref.sum() >= 2 * 2 * 2
    assert (ref_sigmas > 0).all() and (ref_sigmas < 0.2).all()
    torch.testing.assert_close(recorder.seen["timesteps"], info["sigmas"] * 1000.0)
    # The model sees x_t = (1 - sigma) x0 + sigma * noise on the references too; noise = target + x0.
    noise = info["target"] + x0
    torch.testing.assert_close(recorder.seen["latents"], noisy_latents(x0, noise, info["sigmas"]))
    assert not torch.allclose(recorder.seen["latents"][is_ref], x0[is_ref])
    assert loss.item() == masked_velocity_loss(info["pred"], info["target"], info["loss_mask"]).item()
