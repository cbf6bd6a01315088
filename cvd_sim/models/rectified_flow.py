"""Stage-2 rectified-flow training step of the CVD-STORM DiT.

x_t = (1 - sigma) * x0 + sigma * noise, the model predicts the velocity noise - x0 (diffusers'
FlowMatchEulerDiscreteScheduler convention, timestep = 1000 * sigma). Each (t, v) image has its own sigma:
logit-normal with an SD3 shift. The first k frames of a clip are references excluded from the loss: clean
(sigma = 0), or with `reference_noise` slightly noised at a random sigma the model is told (noise augmentation,
as in GameNGen, so generated references with small errors do not throw an autoregressive rollout off). Conditions are dropped per sample for classifier-free guidance; temporal and cross-view blocks are disabled
per sample.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cvd_sim.models.dit_conditions import DiTConditions


def _check_probabilities(probs: tuple[float, ...]) -> tuple[float, ...]:
    if not probs or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError("must be non-negative and sum to 1")
    return probs


# P(k reference frames) for k = 0, 1, 2, ...: a validated probability vector
ReferenceProbs = Annotated[tuple[float, ...], AfterValidator(_check_probabilities)]


class RectifiedFlowConfig(BaseModel):
    """Sampling of sigmas, reference frames, condition dropout and block disabling."""

    model_config = ConfigDict(extra="forbid")

    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0, description="SD3 timestep shift: sigma = s*u / (1 + (s-1)*u)")
    # P(k reference frames) for k = 0, 1, 2, 3: 20 % pure generation, the rest split 0.1 / 0.3 / 0.6.
    reference_probs: ReferenceProbs = (0.2, 0.08, 0.24, 0.48)
    keep_text: float = Field(0.8, ge=0, le=1)
    keep_boxes: float = Field(0.8, ge=0, le=1)
    keep_map: float = Field(0.8, ge=0, le=1)
    keep_camera: float = Field(0.8, ge=0, le=1)
    box_channels: int = Field(3, ge=0, description="layout channels 0..n-1 are boxes, the rest the map")
    disable_temporal: float = Field(0.1, ge=0, le=1)
    disable_crossview: float = Field(0.1, ge=0, le=1)
    reference_noise: float = Field(
        0.0, ge=0, lt=1, description="reference sigmas ~ U(0, this): noise augmentation against rollout drift"
    )


def shift_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 time shift of sigmas in [0, 1]: s*u / (1 + (s-1)*u) (same as FlowMatchEulerDiscreteScheduler)."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def sample_sigmas(shape, cfg: RectifiedFlowConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal sigmas of the given shape (CPU float32), shifted: sigma = shift(sigmoid(N(mean, std)))."""
    normal = torch.randn(shape, generator=generator) * cfg.logit_std + cfg.logit_mean
    return shift_sigmas(torch.sigmoid(normal), cfg.shift)


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x0, noise [B, T, V, C, h, w], sigmas [B, T, V] -> x_t = (1 - sigma) * x0 + sigma * noise."""
    s = sigmas.to(x0)[..., None, None, None]
    return (1.0 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / d sigma = noise - x0."""
    return noise - x0


def sample_reference_counts(
    batch: int, num_frames: int, probs: tuple[float, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reference frames per sample [B] int64, drawn from probs (index = count), capped at num_frames - 1 so at
    least one frame is generated."""
    counts = torch.multinomial(
        torch.tensor(probs, dtype=torch.float64), batch, replacement=True, generator=generator
    )
    return counts.clamp(max=num_frames - 1)


def reference_mask(counts: torch.Tensor, num_frames: int, num_views: int) -> torch.Tensor:
    """counts [B] -> [B, T, V] bool, True for the first counts[b] frames (the clean references)."""
    frames = torch.arange(num_frames, device=counts.device)
    return (frames[None, :] < counts[:, None])[..., None].expand(-1, -1, num_views)


def masked_velocity_loss(pred: torch.Tensor, target: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the images where loss_mask [B, T, V] is True; pred/target [B, T, V, C, h, w].
    Images outside the mask contribute exactly nothing (their values are never read into the sum)."""
    weights = loss_mask.to(pred.dtype)
    per_image = torch.where(loss_mask[..., None, None, None], (pred - target) ** 2, 0.0).flatten(3).mean(-1)
    return (per_image * weights).sum() / weights.sum().clamp_min(1.0)


def _keep(batch: int, prob: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(batch, generator=generator) < prob


def drop_conditions(
    cond: DiTConditions,
    null_hidden: torch.Tensor,
    null_pooled: torch.Tensor,
    cfg: RectifiedFlowConfig,
    generator: torch.Generator | None = None,
) -> DiTConditions:
    """Classifier-free-guidance dropout, independently per sample and condition: text -> the empty-prompt
    encoding (null_hidden [1, L, D], null_pooled [1, P]); box / map layout channels -> 0; camera -> masked out."""
    b = cond.text_hidden.shape[0]
    device = cond.text_hidden.device
    keep_text = _keep(b, cfg.keep_text, generator).to(device)
    hidden = torch.where(keep_text[:, None, None], cond.text_hidden, null_hidden.to(cond.text_hidden))
    pooled = torch.where(keep_text[:, None], cond.text_pooled, null_pooled.to(cond.text_pooled))
    layout = cond.layout
    if layout is not None:
        keep_boxes = _keep(b, cfg.keep_boxes, generator)
        keep_map = _keep(b, cfg.keep_map, generator)
        channel_is_box = torch.arange(layout.shape[3]) < cfg.box_channels
        keep = torch.where(channel_is_box[None, :], keep_boxes[:, None], keep_map[:, None]).to(layout)
        layout = layout * keep[:, None, None, :, None, None]
    camera_mask = _keep(b, cfg.keep_camera, generator).to(device, torch.float32)
    if cond.camera_mask is not None:
        camera_mask = camera_mask * cond.camera_mask
    return replace(cond, text_hidden=hidden, text_pooled=pooled, layout=layout, camera_mask=camera_mask)


def rectified_flow_step(
    model: torch.nn.Module,
    latents: torch.Tensor,
    cond: DiTConditions,
    null_hidden: torch.Tensor,
    null_pooled: torch.Tensor,
    cfg: RectifiedFlowConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training forward: clean latents [B, T, V, C, h, w] + conditions -> (loss, info).

    info: sigmas [B, T, V] (0 on references unless `reference_noise`), reference_counts [B], loss_mask [B, T, V], pred and target
    [B, T, V, C, h, w], temporal_enabled / crossview_enabled [B]. Random draws come from `generator` (CPU)."""
    b, t, v = latents.shape[:3]
    device = latents.device
    counts = sample_reference_counts(b, t, cfg.reference_probs, generator)
    is_ref = reference_mask(counts, t, v).to(device)
    sigmas = sample_sigmas((b, t, v), cfg, generator).to(device)
    ref_sigmas = 0.0
    if cfg.reference_noise > 0:  # drawn only when on, so runs without it keep their random stream
        ref_sigmas = (torch.rand((b, t, v), generator=generator) * cfg.reference_noise).to(device)
    sigmas = torch.where(is_ref, ref_sigmas, sigmas)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    x_t = noisy_latents(latents, noise, sigmas)
    cond = drop_conditions(cond, null_hidden, null_pooled, cfg, generator)
    temporal_enabled = ~_keep(b, cfg.disable_temporal, generator).to(device)
    crossview_enabled = ~_keep(b, cfg.disable_crossview, generator).to(device)
    pred = model(
        x_t,
        sigmas * 1000.0,
        temporal_enabled=temporal_enabled,
        crossview_enabled=crossview_enabled,
        **cond.model_kwargs(),
    ).sample
    target = velocity_target(latents, noise)
    loss_mask = ~is_ref
    loss = masked_velocity_loss(pred, target, loss_mask)
    info = {
        "sigmas": sigmas,
        "reference_counts": counts,
        "loss_mask": loss_mask,
        "pred": pred,
        "target": target,
        "temporal_enabled": temporal_enabled,
        "crossview_enabled": crossview_enabled,
    }
    return loss, info
