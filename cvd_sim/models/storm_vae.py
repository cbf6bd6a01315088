"""STORM-VAE: a diffusers AutoencoderKL (SD3.5 layout; `StormAutoencoderKL` allows a wider decoder) plus a Gaussian
decoder that reads its latents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import nn

from cvd_sim.models.gaussian_decoder import GaussianDecoder
from cvd_sim.models.storm_autoencoder import StormAutoencoderKL

INITIAL_LOGVAR = -6.0  # posterior log-variance of a VAE trained from scratch, at initialisation
SD35_SCALING_FACTOR = 1.5305
SD35_SHIFT_FACTOR = 0.0609

# Stable Diffusion 3.5 VAE architecture (diffusers AutoencoderKL config).
SD35_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": SD35_SCALING_FACTOR,
    "shift_factor": SD35_SHIFT_FACTOR,
    "force_upcast": True,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "mid_block_add_attention": True,
}

# Same layout (16 channels, 8x down, same normalisation) at a width that trains on a 2-core CPU.
TINY_VAE_CONFIG: dict[str, Any] = {
    **SD35_VAE_CONFIG,
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 1,
    "norm_num_groups": 16,
    "sample_size": 256,
}

# ViT-B/8-sized decoder (latent patch 1 = 8x8 pixels), as in STORM.
FULL_DECODER_CONFIG: dict[str, Any] = {
    "width": 768,
    "depth": 12,
    "num_heads": 12,
    "key_upsampler_channels": [512, 256, 128],
    "sky_hidden": 64,
}

TINY_DECODER_CONFIG: dict[str, Any] = {
    "width": 128,
    "depth": 4,
    "num_heads": 4,
    "key_upsampler_channels": [64, 32, 16],
    "sky_hidden": 32,
}

PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "full": (SD35_VAE_CONFIG, FULL_DECODER_CONFIG),
    "tiny": (TINY_VAE_CONFIG, TINY_DECODER_CONFIG),
}


def load_sd35_vae(folder: str | Path) -> AutoencoderKL:
    """Load SD3.5-layout VAE weights from a local diffusers folder (the `vae/` folder or a pipeline root)."""
    folder = Path(folder)
    if (folder / "vae" / "config.json").is_file():
        folder = folder / "vae"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no diffusers VAE here (expected config.json + diffusion_pytorch_model.safetensors); "
            "download stabilityai/stable-diffusion-3.5-medium's `vae/` folder and point at it"
        )
    vae = StormAutoencoderKL.from_pretrained(folder)
    if vae.config.latent_channels != 16:
        raise ValueError(f"{folder}: latent_channels is {vae.config.latent_channels}; SD3.5 layout needs 16")
    return vae


def _format_of(module: nn.Module) -> torch.memory_format:
    """The memory format of `module`'s input convolution, so inputs match the weights."""
    weight = module.conv_in.weight
    return (
        torch.channels_last
        if weight.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


class StormVAE(nn.Module):
    """Image VAE + Gaussian decoder (DESIGN §2).

    Latents are normalised the SD3 way: `(z - shift_factor) * scaling_factor`, shape [B, T, V, 16, H/8, W/8].
    """

    def __init__(self, vae: AutoencoderKL, gaussian_decoder: GaussianDecoder):
        super().__init__()
        if vae.config.latent_channels != gaussian_decoder.config.latent_channels:
            raise ValueError("StormVAE: VAE and Gaussian decoder disagree on latent channels")
        self.vae = vae.to(memory_format=torch.channels_last)  # oneDNN convolutions: ~1.35x on CPU
        self.gaussian_decoder = gaussian_decoder

    # ------------------------------------------------------------------ construction and I/O
    @classmethod
    def from_preset(
        cls,
        name: str,
        vae_pretrained: str | Path | None = None,
        vae_overrides: dict[str, Any] | None = None,
        **decoder_overrides: Any,
    ) -> StormVAE:
        """Build preset `full` or `tiny`; `vae_pretrained` loads an SD3.5-layout VAE folder into the VAE part,
        `vae_overrides` / `decoder_overrides` change StormAutoencoderKL / GaussianDecoder config entries."""
        if name not in PRESETS:
            raise KeyError(f"unknown StormVAE preset {name!r}; choose from {sorted(PRESETS)}")
        vae_config, decoder_config = PRESETS[name]
        if vae_pretrained:
            vae = load_sd35_vae(vae_pretrained)
        else:
            vae = StormAutoencoderKL(**{**vae_config, **(vae_overrides or {})})
            with (
                torch.no_grad()
            ):  # a fresh VAE starts with a narrow posterior (std e^-3) so latents carry signal
                vae.encoder.conv_out.bias[vae.config.latent_channels :] = INITIAL_LOGVAR
        decoder = GaussianDecoder(
            latent_channels=vae.config.latent_channels, **{**decoder_config, **decoder_overrides}
        )
        return cls(vae, decoder)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write folder/vae and folder/gaussian_decoder (config JSON + safetensors each)."""
        folder = Path(folder)
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        self.gaussian_decoder.save_pretrained(folder / "gaussian_decoder", safe_serialization=True)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> StormVAE:
        """Load a folder written by `save_pretrained` (or a WorldModel folder, which has the same two parts)."""
        folder = Path(folder)
        for part in ("vae", "gaussian_decoder"):
            if not (folder / part / "config.json").is_file():
                raise FileNotFoundError(f"{folder}: missing {part}/config.json; not a StormVAE folder")
        return cls(
            StormAutoencoderKL.from_pretrained(folder / "vae"),
            GaussianDecoder.from_pretrained(folder / "gaussian_decoder"),
        )

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()
        self.gaussian_decoder.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ VAE branch
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.vae.config.shift_factor) * self.vae.config.scaling_factor

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.vae.config.scaling_factor + self.vae.config.shift_factor

    def encode_distribution(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [..., 3, H, W] in [-1, 1] -> posterior (mean, logvar) [..., 16, H/8, W/8], unnormalised."""
        lead = images.shape[:-3]
        flat = images.reshape(-1, *images.shape[-3:]).contiguous(memory_format=_format_of(self.vae.encoder))
        dist = self.vae.encode(flat).latent_dist
        return dist.mean.reshape(*lead, *dist.mean.shape[1:]), dist.logvar.reshape(
            *lead, *dist.logvar.shape[1:]
        )

    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """images [B, T, V, 3, H, W] in [-1, 1] -> normalised latents [B, T, V, 16, H/8, W/8] (posterior mean
        unless `sample`)."""
        mean, logvar = self.encode_distribution(images)
        z = mean if not sample else mean + torch.exp(0.5 * logvar) * self._noise(mean, generator)
        return self.normalize(z)

    def decode(self, latents: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Normalised latents [..., 16, h, w] -> images [..., 3, 8h, 8w] (clamped to [-1, 1] unless clamp=False)."""
        lead = latents.shape[:-3]
        flat = self.denormalize(latents.reshape(-1, *latents.shape[-3:]))
        images = self.vae.decode(flat.contiguous(memory_format=_format_of(self.vae.decoder))).sample
        images = images.reshape(*lead, *images.shape[1:])
        return images.clamp(-1.0, 1.0) if clamp else images

    @staticmethod
    def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(like.shape, generator=generator, dtype=torch.float32, device="cpu")
        return noise.to(device=like.device, dtype=like.dtype)

    # ------------------------------------------------------------------ Gaussian branch
    def reconstruct(
        self,
        latents: torch.Tensor,
        intrinsics: torch.Tensor,
        cam_to_ref: torch.Tensor,
        times: torch.Tensor,
        target_intrinsics: torch.Tensor,
        target_cam_to_ref: torch.Tensor,
        target_times: torch.Tensor,
        height: int,
        width: int,
        target_view_ids: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """4D reconstruction from context latents, rendered at target cameras.

        latents [B, Tc, V, 16, h, w] normalised; intrinsics [B, Tc, V, 3, 3]; cam_to_ref [B, Tc, V, 4, 4];
        times [B, Tc] s; target_* [B, Tt, V', ...], target_times [B, Tt] ->
        {"rgb": [B, Tt, V', 3, H, W] in [-1, 1], "depth": [B, Tt, V', 1, H, W] m, "alpha": [B, Tt, V', 1, H, W],
         "sky": ..., "gaussians": GaussianDecoder.predict dict}. target_view_ids [V'] names the context view whose
        exposure each target view uses (default: same index when V' == V, else none).
        """
        out = self.gaussian_decoder(
            latents,
            intrinsics,
            cam_to_ref,
            times,
            target_intrinsics,
            target_cam_to_ref,
            target_times,
            height,
            width,
            target_view_ids,
        )
        out["rgb"] = out["rgb"].clamp(-1.0, 1.0)
        return out

    def forward(
        self,
        context_images: torch.Tensor,
        intrinsics: torch.Tensor,
        cam_to_ref: torch.Tensor,
        times: torch.Tensor,
        target_intrinsics: torch.Tensor,
        target_cam_to_ref: torch.Tensor,
        target_times: torch.Tensor,
        decode_index: torch.Tensor | None = None,
        target_view_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        render: bool = True,
    ) -> dict[str, Any]:
        """Training pass: encode context images, sample latents, decode some of them, render the targets.

        context_images [B, Tc, V, 3, H, W]; cameras/times as in `reconstruct`; decode_index [K] indices into the
        flattened Tc*V context images whose VAE reconstruction is returned (None = all, empty = no decode);
        target_view_ids as in `reconstruct`; render=False skips the Gaussian branch (plain-VAE training) ->
        {"mean", "logvar": [B, Tc, V, 16, h, w], plus "vae_recon": [B, K, 3, H, W] (unclamped) and
         "vae_index": [K] when K > 0, plus the unclamped GaussianDecoder render dict when `render`}.
        """
        b, tc, v, _, height, width = context_images.shape
        mean, logvar = self.encode_distribution(context_images)
        latents = self.normalize(mean + torch.exp(0.5 * logvar) * self._noise(mean, generator))
        if decode_index is None:
            decode_index = torch.arange(tc * v)
        decode_index = decode_index.to(latents.device)
        chosen = latents.reshape(b, tc * v, *latents.shape[3:])[:, decode_index]
        out: dict[str, Any] = {}
        if render:
            out = self.gaussian_decoder(
                latents,
                intrinsics,
                cam_to_ref,
                times,
                target_intrinsics,
                target_cam_to_ref,
                target_times,
                height,
                width,
                target_view_ids,
            )
        out.update(mean=mean, logvar=logvar)
        if len(decode_index):
            out.update(vae_recon=self.decode(chosen, clamp=False), vae_index=decode_index)
        return out
