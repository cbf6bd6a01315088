"""The diffusers-style CVD-STORM world model: sample multi-view latents, roll them out, decode, reconstruct 4D."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from tqdm.auto import tqdm

from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.models.text_encoder import ByteTextEncoder, HFTextEncoder, load_text_encoder
from cvd_sim.pipelines.window_denoiser import WindowDenoiser, use_reference_cache
from cvd_sim.pipelines.world_conditions import WorldConditions

PARTS = ("vae", "gaussian_decoder", "dit", "text_encoder", "scheduler")
DISTILLED_DIT = (
    "dit_distilled"  # optional: a one-step student of `dit` (`cvd-sim train dit --config tiny_distill`)
)


class WorldModel:
    """STORM-VAE (vae + gaussian_decoder) + CVD-STORM DiT + text encoder + FlowMatchEulerDiscreteScheduler.

    A folder holds vae/, gaussian_decoder/, dit/, text_encoder/ and scheduler/, each with config JSON +
    safetensors, and optionally dit_distilled/: a student of `dit` distilled to sample in one Euler step from
    pure noise (`training/dit_distill.py`). Latents are normalised STORM-VAE latents [B, T, V, 16, H/8, W/8]."""

    def __init__(
        self,
        storm_vae: StormVAE,
        dit: CVDStormDiT,
        text_encoder: ByteTextEncoder | HFTextEncoder,
        scheduler: FlowMatchEulerDiscreteScheduler,
        dit_distilled: CVDStormDiT | None = None,
    ):
        self.storm_vae = storm_vae.eval()
        self.dit = dit.eval()
        self.text_encoder = text_encoder.eval()
        self.scheduler = scheduler
        self.dit_distilled = None if dit_distilled is None else dit_distilled.eval()

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        """Load a folder written by `save_pretrained`."""
        folder = Path(folder)
        missing = [part for part in PARTS if not (folder / part).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{folder}: not a WorldModel folder, missing {missing} (expected {', '.join(p + '/' for p in PARTS)}); "
                "train one with `cvd-sim train dit` or use the shipped checkpoint"
            )
        model = cls(
            StormVAE.from_pretrained(folder),
            CVDStormDiT.from_pretrained(folder / "dit"),
            load_text_encoder(folder / "text_encoder"),
            FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
            CVDStormDiT.from_pretrained(folder / DISTILLED_DIT)
            if (folder / DISTILLED_DIT).is_dir()
            else None,
        )
        return model.to(device)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write vae/, gaussian_decoder/, dit/, text_encoder/, scheduler/ (and dit_distilled/) under folder."""
        folder = Path(folder)
        self.storm_vae.save_pretrained(folder)
        self.dit.save_pretrained(folder / "dit", safe_serialization=True)
        if self.dit_distilled is not None:
            self.dit_distilled.save_pretrained(folder / DISTILLED_DIT, safe_serialization=True)
        self.text_encoder.save_pretrained(folder / "text_encoder")
        self.scheduler.save_pretrained(folder / "scheduler")

    def to(self, device: str | torch.device) -> WorldModel:
        for module in (self.storm_vae, self.dit, self.text_encoder, self.dit_distilled):
            if module is not None:
                module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    # ------------------------------------------------------------------ conditions
    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B captions -> hidden [B, L, D], pooled [B, P]."""
        return self.text_encoder.encode(prompts)

    def _dit_conditions(self, conditions: WorldConditions, start: int, stop: int) -> DiTConditions:
        hidden, pooled = self.encode_prompt(conditions.prompts())
        window = {
            k: None if x is None else x.to(self.device) for k, x in conditions.window(start, stop).items()
        }
        return DiTConditions(text_hidden=hidden, text_pooled=pooled, **window)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(
        self,
        conditions: WorldConditions,
        reference_latents: torch.Tensor | None = None,
        num_steps: int = 50,
        guidance_scale: float = 3.5,
        generator: torch.Generator | None = None,
        progress: bool = False,
        frames: tuple[int, int] | None = None,
        reference_cache: bool | None = None,
    ) -> torch.Tensor:
        """Sample one window.

        conditions over T frames (or frames = (start, stop) of them, cameras relative to frame start);
        reference_latents [B, k, V, C, h, w] (k < T) are the clean first k frames
        (timestep 0, kept fixed) -> latents [B, T, V, C, h, w] whose first k frames are the references.
        guidance_scale <= 1 disables classifier-free guidance (uncond = empty prompt + blank layout).
        reference_cache: run the references once per window and only the new frames per step (same result;
        needs a causal DiT); None = on when the DiT is causal and num_steps > 1.
        """
        start, stop = frames or (0, conditions.num_frames)
        b, t, v = conditions.batch_size, stop - start, conditions.num_views
        ds = self.dit.config.latent_downscale
        shape = (b, t, v, self.dit.config.in_channels, conditions.height // ds, conditions.width // ds)
        k = 0 if reference_latents is None else reference_latents.shape[1]
        if k >= t:
            raise ValueError(f"{k} reference frames leave nothing to generate in a window of {t} frames")
        if reference_latents is not None and tuple(reference_latents.shape) != (b, k, *shape[2:]):
            raise ValueError(
                f"reference_latents shape {tuple(reference_latents.shape)}, expected {(b, k, *shape[2:])}"
            )

        cond = self._dit_conditions(conditions, start, stop)
        use_cfg = guidance_scale > 1.0
        if use_cfg:
            null_hidden, null_pooled = self.encode_prompt([""])
            cond = DiTConditions.concat(cond, cond.unconditional(null_hidden, null_pooled))
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_steps, device=self.device)

        noise = torch.randn(shape, generator=generator).to(self.device)
        refs = None if reference_latents is None else reference_latents.to(noise)
        x = noise[:, k:]
        denoiser = WindowDenoiser(
            self.dit,
            cond,
            None if refs is None else (torch.cat([refs, refs]) if use_cfg else refs),
            use_reference_cache(self.dit.config, reference_cache, k, num_steps),
            torch.bfloat16 if self.device.type == "cuda" else None,
        )
        for step in tqdm(scheduler.timesteps, desc="denoise", disable=not progress, leave=False):
            pred = denoiser(torch.cat([x, x]) if use_cfg else x, step)
            if use_cfg:
                pred_cond, pred_uncond = pred.chunk(2)
                pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)
            x = scheduler.step(pred, step, x).prev_sample
        return x if refs is None else torch.cat([refs, x], 1)

    @torch.no_grad()
    def rollout(
        self,
        conditions: WorldConditions,
        reference_latents: torch.Tensor | None = None,
        window: int = 19,
        num_references: int = 3,
        num_steps: int = 50,
        guidance_scale: float = 3.5,
        generator: torch.Generator | None = None,
        progress: bool = True,
        reference_cache: bool | None = None,
    ) -> torch.Tensor:
        """Autoregressive long video over all T_total frames of `conditions`: windows of `window` frames, the last
        `num_references` latents of each window become the next window's references (no re-encoding).

        reference_latents [B, k, V, C, h, w] are frames 0..k-1 of the conditions (k < window) or None
        -> latents [B, T_total, V, C, h, w]. reference_cache: see `generate`."""
        total = conditions.num_frames
        window = min(window, total)
        if not 0 < num_references < window:
            raise ValueError(f"num_references={num_references} must be in 1..window-1={window - 1}")
        out = self.generate(
            conditions,
            reference_latents,
            num_steps,
            guidance_scale,
            generator,
            frames=(0, window),
            reference_cache=reference_cache,
        )
        bar = tqdm(total=total, initial=window, desc="rollout frames", disable=not progress)
        while out.shape[1] < total:
            start = out.shape[1] - num_references
            stop = min(start + window, total)
            latents = self.generate(
                conditions,
                out[:, start:],
                num_steps,
                guidance_scale,
                generator,
                frames=(start, stop),
                reference_cache=reference_cache,
            )
            out = torch.cat([out, latents[:, num_references:]], dim=1)
            bar.update(stop - start - num_references)
        bar.close()
        return out

    # ------------------------------------------------------------------ VAE and Gaussians
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, T, V, 3, H, W] in [-1, 1] -> latents [B, T, V, 16, H/8, W/8] (posterior mean)."""
        return self.storm_vae.encode(images.to(self.device))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, T, V, 16, h, w] -> images [B, T, V, 3, 8h, 8w] in [-1, 1]."""
        return self.storm_vae.decode(latents.to(self.device))

    @torch.no_grad()
    def reconstruct(self, latents: torch.Tensor, *args, **kwargs) -> dict:
        """Gaussians from context latents rendered at target cameras: see `StormVAE.reconstruct` for the
        arguments (cameras [B, Tc, V, ...], times [B, Tc], targets, height, width) and the output dict."""
        return self.storm_vae.reconstruct(latents.to(self.device), *args, **kwargs)
