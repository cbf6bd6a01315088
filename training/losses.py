"""Stage-1 (STORM-VAE) loss terms: L_VAE = recon + perceptual + KL; L_STORM = RGB + perceptual + depth + sky + velocity."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from cvd_sim.models.lpips import LPIPS


class LossWeights(BaseModel):
    """Weights of every term (STORM's defaults for the Gaussian branch, REFERENCES.md)."""

    model_config = ConfigDict(extra="forbid")

    vae_recon: float = Field(1.0, ge=0)
    vae_recon_kind: Literal["l1", "mse"] = Field(
        "l1", description="VAE reconstruction error: l1 (|x - y|) or mse ((x - y)^2, the error PSNR measures)"
    )
    vae_perceptual: float = Field(0.1, ge=0)
    vae_kl: float = Field(1e-6, ge=0)
    storm: float = Field(0.5, ge=0, description="lambda in L_VAE + lambda * L_STORM")
    rgb: float = Field(1.0, ge=0)
    perceptual: float = Field(0.05, ge=0)
    perceptual_start_step: int = Field(0, ge=0, description="perceptual terms switch on at this step")
    depth: float = Field(1.0, ge=0)
    depth_kind: Literal["l1_max_normalized", "log_l1"] = "l1_max_normalized"
    sky: float = Field(0.1, ge=0)
    velocity: float = Field(0.005, ge=0)
    lpips_vgg_weights: Path | None = Field(
        None,
        description="torchvision vgg16 state dict; without it the perceptual weights are 0 (warned once)",
    )


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over all elements -> scalar."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()


def depth_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1_max_normalized") -> torch.Tensor:
    """Depth error where target > 0.01 m. pred/target [..., 1, H, W] metres -> scalar.

    "l1_max_normalized" (STORM): |pred - gt| / max(gt over the batch); "log_l1": |log pred - log gt|.
    """
    valid = target > 0.01
    if not bool(valid.any()):
        return pred.sum() * 0.0
    p, t = pred[valid], target[valid]
    if kind == "log_l1":
        return (p.clamp(min=1e-3).log() - t.log()).abs().mean()
    return (p - t).abs().mean() / t.max()


def sky_opacity_loss(alpha: torch.Tensor, sky_mask: torch.Tensor, has_sky_mask: torch.Tensor) -> torch.Tensor:
    """L1(alpha, 1 - sky) on samples whose sky mask is known. alpha/sky_mask [B, ..., 1, H, W], has [B] bool."""
    if not bool(has_sky_mask.any()):
        return alpha.sum() * 0.0
    keep = has_sky_mask.bool()
    return (alpha[keep] - (1.0 - sky_mask[keep])).abs().mean()


class Perceptual:
    """LPIPS when local VGG weights are configured, otherwise a zero term (with one warning)."""

    _warned = False

    def __init__(self, vgg_weights: Path | None, device: torch.device):
        self.net = None
        if vgg_weights is not None and Path(vgg_weights).is_file():
            self.net = LPIPS.from_files(vgg_weights).to(device)
        elif not Perceptual._warned:
            Perceptual._warned = True
            warnings.warn(
                f"LPIPS VGG16 weights not found ({vgg_weights}); perceptual loss weights are set to 0. "
                "Put torchvision's vgg16-397923af.pth locally and set loss.lpips_vgg_weights to use them.",
                stacklevel=2,
            )

    @property
    def available(self) -> bool:
        return self.net is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y [..., 3, H, W] in [-1, 1] -> mean LPIPS (0 when unavailable)."""
        if self.net is None:
            return x.sum() * 0.0
        return self.net(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])).mean()
