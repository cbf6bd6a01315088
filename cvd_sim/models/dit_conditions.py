"""The conditions one DiT call sees, bundled, and how classifier-free guidance blanks them."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class DiTConditions:
    """text_hidden [B, L, D_text] and text_pooled [B, P] (encoded prompts); layout [B, T, V, C, 8h, 8w] or None;
    intrinsics [B, T, V, 3, 3] (pixels of the 8h x 8w image) and cam_to_ref [B, T, V, 4, 4] (camera -> first
    frame's ego) or None; camera_mask [B] float (1 keep, 0 drop) or None."""

    text_hidden: torch.Tensor
    text_pooled: torch.Tensor
    layout: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    cam_to_ref: torch.Tensor | None = None
    camera_mask: torch.Tensor | None = None

    def model_kwargs(self) -> dict:
        """Keyword arguments of `CVDStormDiT.forward` (besides latents, timesteps and block switches)."""
        return {
            "encoder_hidden_states": self.text_hidden,
            "pooled_projections": self.text_pooled,
            "layout": self.layout,
            "intrinsics": self.intrinsics,
            "cam_to_ref": self.cam_to_ref,
            "camera_mask": self.camera_mask,
        }

    def frames(self, start: int, stop: int) -> DiTConditions:
        """Frames start..stop-1 of the per-image conditions (cameras stay relative to the window's first frame);
        text and camera_mask are per sample and kept."""

        def cut(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[:, start:stop]

        return replace(
            self, layout=cut(self.layout), intrinsics=cut(self.intrinsics), cam_to_ref=cut(self.cam_to_ref)
        )

    def unconditional(self, null_hidden: torch.Tensor, null_pooled: torch.Tensor) -> DiTConditions:
        """The CFG branch: empty-prompt encoding ([1 or B, L, D], [1 or B, P]) and blank layout; cameras kept."""
        b = self.text_hidden.shape[0]
        return replace(
            self,
            text_hidden=null_hidden.expand(b, *null_hidden.shape[1:]),
            text_pooled=null_pooled.expand(b, *null_pooled.shape[1:]),
            layout=None if self.layout is None else torch.zeros_like(self.layout),
        )

    @staticmethod
    def concat(first: DiTConditions, second: DiTConditions) -> DiTConditions:
        """Stack two condition sets on the batch axis (cond + uncond in one CFG forward)."""

        def cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None else torch.cat([a, b])

        return DiTConditions(
            text_hidden=torch.cat([first.text_hidden, second.text_hidden]),
            text_pooled=torch.cat([first.text_pooled, second.text_pooled]),
            layout=cat(first.layout, second.layout),
            intrinsics=cat(first.intrinsics, second.intrinsics),
            cam_to_ref=cat(first.cam_to_ref, second.cam_to_ref),
            camera_mask=cat(first.camera_mask, second.camera_mask),
        )
