"""Stage 2b: distil the DiT's few-step sampler into a one-step student (knowledge distillation of a
deterministic sampler, Luhman & Luhman 2021).

The teacher is a trained WorldModel folder's DiT, frozen, sampling the env's fast schedule (`teacher_steps`
Euler steps with `teacher_shift`, no CFG) behind 0-3 clean reference frames of a cached window. The student
starts as a copy of it and learns to land on the teacher's result in one Euler step from the same noise:
x0 = noise - v_student(noise, sigma=1). Windows, conditions and the engine are stage 2's; the text encoder
stays the teacher's, frozen. The final folder is the teacher's WorldModel folder plus `dit_distilled/`.
"""

from __future__ import annotations

import torch
from cvd_sim.envs.worldmodel_sampler import sample_frames
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from cvd_sim.models.rectified_flow import ReferenceProbs, sample_reference_counts
from cvd_sim.pipelines.world_model import WorldModel


class DistillSection(BaseModel):
    """The teacher's sampler, and how many clean references the student's windows start with."""

    model_config = ConfigDict(extra="forbid")

    teacher_steps: int = Field(
        3, ge=1, description="Euler steps of the teacher's sampler (the env's fast default)"
    )
    teacher_shift: float = Field(10.0, gt=0, description="timestep shift of the teacher's schedule")
    # P(k reference frames) for k = 0, 1, 2, 3: the env steps behind 3 references once warmed up
    reference_probs: ReferenceProbs = (0.1, 0.0, 0.1, 0.8)


def one_step_sample(dit: nn.Module, latents: torch.Tensor, noise: torch.Tensor, cond, num_references: int):
    """The student's sample: one Euler step from sigma = 1 to 0 over a window whose first `num_references`
    frames of `latents` [B, T, V, C, h, w] are clean (timestep 0) and whose other frames start as `noise`
    [B, T - k, V, C, h, w] -> x0 of the new frames [B, T - k, V, C, h, w]."""
    k = num_references
    x = torch.cat([latents[:, :k], noise], 1)
    timesteps = torch.full(x.shape[:3], 1000.0, device=x.device)
    timesteps[:, :k] = 0.0
    velocity = dit(x, timesteps, **cond.model_kwargs()).sample[:, k:]
    return noise - velocity.float()


class Distillation:
    """The distillation objective as the Engine's `step` (and `images`) callbacks. `stage_two` gives the
    windows and conditions (`StageTwo`); `teacher` is the frozen WorldModel whose DiT is distilled."""

    def __init__(self, section: DistillSection, stage_two, teacher: WorldModel):
        self.section = section
        self.stage_two = stage_two
        self.teacher = teacher

    def forward_window(self, model, batch, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One random window: {"student", "teacher": x0 of its new frames [B, n, V, C, h, w], "references": k}."""
        num_frames = batch["ego_to_world"].shape[1]
        key, start, stop = self.stage_two.pick_window(num_frames, gen)
        latents, cond, _, _ = self.stage_two.conditions(model, batch, key, start, stop)
        t = latents.shape[1]
        k = int(sample_reference_counts(1, t, self.section.reference_probs, gen))
        noise = torch.randn(latents[:, k:].shape, generator=gen).to(latents)
        teacher_x0 = sample_frames(
            self.teacher,
            self.teacher.dit,
            cond,
            latents[:, :k] if k else None,
            noise,
            self.section.teacher_steps,
            guidance_scale=1.0,
            shift=self.section.teacher_shift,
        )
        student_x0 = one_step_sample(getattr(model, "module", model).dit, latents, noise, cond, k)
        return {"student": student_x0, "teacher": teacher_x0, "references": k}

    def step(self, model, batch, gen: torch.Generator, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.forward_window(model, batch, gen)
        loss = torch.mean((out["student"] - out["teacher"]) ** 2)
        return loss, {"references": float(out["references"])}

    @torch.no_grad()
    def images(self, model, batch, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Sample 0, last new frame, all views: rows = teacher's sample / student's one-step sample, decoded,
        as [3, 2H, V*W] in [0, 1]."""
        out = self.forward_window(model, batch, gen)
        vae = self.teacher.storm_vae
        rows = [
            torch.cat(list(vae.decode(out[name][0, -1]) * 0.5 + 0.5), dim=-1)
            for name in ("teacher", "student")
        ]
        return {"teacher_vs_student": torch.cat(rows, dim=-2).clamp(0, 1)}
