"""The velocity of a window's new latent frames behind its clean reference frames, at one sampling step.

Uncached, each step runs the DiT over the whole window (references at timestep 0). With reference caching (a
causal DiT only: its reference frames never attend to later frames, so their hidden states are the same at every
step), the references run once per window and each step runs only the new frames, whose temporal attention
reads the cached reference keys/values.
"""

from __future__ import annotations

import torch

from cvd_sim.models.dit_conditions import DiTConditions


def use_reference_cache(dit_config, requested: bool | None, num_references: int, num_steps: int) -> bool:
    """Whether to cache: `requested` None = when the DiT is causal and samples in more than one step (one step
    runs the window once either way, and one pass over it is cheaper than two); True on a non-causal DiT is an
    error."""
    causal = bool(dit_config.causal_temporal)
    if requested and not causal:
        raise ValueError(
            "reference_cache=True needs a DiT trained with causal_temporal=True (its reference frames must not "
            "attend to the generated frames); use reference_cache=None or False for this model"
        )
    return num_references > 0 and (causal and num_steps > 1 if requested is None else requested)


class WindowDenoiser:
    """Velocity of the new frames of windows = k clean references + n new frames, under `conditions`.

    dit: `CVDStormDiT` or a compiled wrapper; conditions over the k + n frames; references [B, k, V, C, h, w]
    or None; cache: run the references once (see the module docstring); autocast_dtype: DiT autocast dtype
    on the conditions' device, or None."""

    def __init__(
        self,
        dit,
        conditions: DiTConditions,
        references: torch.Tensor | None,
        cache: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ):
        self.dit = dit
        self.references = references
        self.num_references = 0 if references is None else references.shape[1]
        self.autocast_dtype = autocast_dtype
        self.device_type = conditions.text_hidden.device.type
        self.cache = None
        if cache and self.num_references:
            k = self.num_references
            with self._autocast():
                self.cache = dit.cache_references(
                    references, self._timesteps(references, 0.0), **conditions.frames(0, k).model_kwargs()
                )
            conditions = conditions.frames(k, None)
        self.model_kwargs = conditions.model_kwargs()

    def _autocast(self):
        dtype = self.autocast_dtype or torch.bfloat16
        return torch.autocast(self.device_type, dtype=dtype, enabled=self.autocast_dtype is not None)

    @staticmethod
    def _timesteps(latents: torch.Tensor, value) -> torch.Tensor:
        """[B, T, V] float32 filled with value (a float or a 0-d tensor)."""
        return torch.full(latents.shape[:3], float(value), device=latents.device)

    def __call__(self, new_latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """new_latents [B, n, V, C, h, w] at scheduler timestep `timestep` (0-d) -> velocity [B, n, V, C, h, w]
        float32."""
        new_t = self._timesteps(new_latents, timestep)
        with self._autocast():
            if self.cache is not None:
                return self.dit(
                    new_latents, new_t, **self.model_kwargs, reference_cache=self.cache
                ).sample.float()
            if self.references is None:
                return self.dit(new_latents, new_t, **self.model_kwargs).sample.float()
            latents = torch.cat([self.references, new_latents], 1)
            timesteps = torch.cat([self._timesteps(self.references, 0.0), new_t], 1)
            pred = self.dit(latents, timesteps, **self.model_kwargs).sample
            return pred[:, self.num_references :].float()
