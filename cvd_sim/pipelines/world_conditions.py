"""What the simulator asks the world model for: prompt, cameras, ego poses and layout images over T frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvd_sim.models.camera_embedding import camera_to_first_ego


@dataclass
class WorldConditions:
    """Conditions of B clips of T frames and V cameras at image size height x width.

    prompt: one caption (shared) or B captions; intrinsics [B, T, V, 3, 3] pixels of height x width;
    cam_to_ego [B, T, V, 4, 4]; ego_to_world [B, T, 4, 4]; layout [B, T, V, C, height, width] or None
    (boxes + map layout images)."""

    prompt: str | list[str]
    intrinsics: torch.Tensor
    cam_to_ego: torch.Tensor
    ego_to_world: torch.Tensor
    height: int
    width: int
    layout: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, t, v = self.intrinsics.shape[:3]
        checks = {
            "cam_to_ego": (self.cam_to_ego, (b, t, v, 4, 4)),
            "ego_to_world": (self.ego_to_world, (b, t, 4, 4)),
        }
        if self.layout is not None:
            checks["layout"] = (self.layout, (b, t, v, self.layout.shape[3], self.height, self.width))
        for name, (tensor, shape) in checks.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"WorldConditions.{name}: shape {tuple(tensor.shape)}, expected {shape}")
        if isinstance(self.prompt, list) and len(self.prompt) != b:
            raise ValueError(f"WorldConditions.prompt: {len(self.prompt)} captions for a batch of {b}")

    @property
    def batch_size(self) -> int:
        return self.intrinsics.shape[0]

    @property
    def num_frames(self) -> int:
        return self.intrinsics.shape[1]

    @property
    def num_views(self) -> int:
        return self.intrinsics.shape[2]

    def prompts(self) -> list[str]:
        """B captions."""
        return self.prompt if isinstance(self.prompt, list) else [self.prompt] * self.batch_size

    def window(self, start: int, stop: int) -> dict[str, torch.Tensor | None]:
        """Frames start..stop-1 with cameras relative to frame `start`'s ego pose:
        {"intrinsics" [B, W, V, 3, 3], "cam_to_ref" [B, W, V, 4, 4], "layout" [B, W, V, C, H, W] or None}."""
        cam_to_ref = camera_to_first_ego(self.cam_to_ego[:, start:stop], self.ego_to_world[:, start:stop])
        layout = None if self.layout is None else self.layout[:, start:stop]
        return {"intrinsics": self.intrinsics[:, start:stop], "cam_to_ref": cam_to_ref, "layout": layout}
