"""STORM-style Gaussian decoder: VAE latents of context frames x views -> per-pixel 3D Gaussians -> renders.

Tokens = patchified latents + patchified Plücker rays + 2D positions + a time embedding, run through a ViT
together with motion tokens, one sky token and one exposure token per view (DESIGN §2, REFERENCES "STORM").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from cvd_sim.geometry.rays import camera_rays, plucker_rays
from cvd_sim.models.embeddings import fourier_features, sincos_position_embedding_2d, sinusoidal_embedding
from cvd_sim.models.vit import ViT
from cvd_sim.splat.rasterize import rasterize

GAUSSIAN_CHANNELS = 12  # depth 1, scale 3, quaternion 4, opacity 1, colour 3
VAE_DOWNSAMPLE = 8


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, (H/p)*(W/p), C*p*p] (row-major patches)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(x: torch.Tensor, grid_h: int, grid_w: int, patch: int) -> torch.Tensor:
    """[N, grid_h*grid_w, p*p*C] (patch pixels outer, channels inner) -> [N, grid_h*p, grid_w*p, C]."""
    n = x.shape[0]
    x = x.reshape(n, grid_h, grid_w, patch, patch, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, grid_h * patch, grid_w * patch, -1)


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class GaussianDecoder(ModelMixin, ConfigMixin):
    """Reads normalised VAE latents; predicts one Gaussian per image pixel and renders target cameras."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        latent_patch_size: int = 1,
        width: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_motion_tokens: int = 16,
        max_views: int = 6,
        key_dim: int = 32,
        key_upsampler_channels: tuple[int, ...] = (512, 256, 128),
        sky_hidden: int = 64,
        head_hidden: int = 0,
        near: float = 0.2,
        far: float = 400.0,
        init_depth: float = 20.0,
        max_scale: float = 0.5,
        velocity_temperature: float = 0.5,
        time_unit: float = 0.1,
    ):
        super().__init__()
        pixel_patch = VAE_DOWNSAMPLE * latent_patch_size
        if 2 ** len(key_upsampler_channels) != pixel_patch:
            raise ValueError(
                f"key_upsampler_channels needs log2({pixel_patch}) = {int(math.log2(pixel_patch))} stages, "
                f"got {len(key_upsampler_channels)}"
            )
        self.pixel_patch = pixel_patch
        self.latent_embed = nn.Linear(latent_channels * latent_patch_size**2, width)
        self.ray_embed = nn.Linear(6 * pixel_patch**2, width)
        self.time_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.motion_tokens = nn.Parameter(torch.randn(num_motion_tokens, width) * 0.02)
        self.sky_token = nn.Parameter(torch.randn(1, width) * 0.02)
        self.exposure_tokens = nn.Parameter(torch.randn(max_views, width) * 0.02)
        self.transformer = ViT(width, depth, num_heads, mlp_ratio)

        self.gaussian_head = nn.Linear(width, pixel_patch**2 * GAUSSIAN_CHANNELS)
        with torch.no_grad():  # start depth near init_depth instead of the middle of [near, far]
            bias = self.gaussian_head.bias.view(pixel_patch**2, GAUSSIAN_CHANNELS)
            bias[:, 0] = math.log((init_depth - near) / (far - init_depth))
        # optional residual MLP beside the linear head (STORM's is linear); output zero-initialised
        self.gaussian_head_mlp = (
            _mlp([width, head_hidden, pixel_patch**2 * GAUSSIAN_CHANNELS]) if head_hidden else None
        )
        if self.gaussian_head_mlp is not None:
            nn.init.zeros_(self.gaussian_head_mlp[-1].weight)
            nn.init.zeros_(self.gaussian_head_mlp[-1].bias)

        stages: list[nn.Module] = []
        in_ch = width
        for out_ch in key_upsampler_channels:
            stages += [nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2), nn.GELU()]
            in_ch = out_ch
        self.key_upsampler = nn.Sequential(*stages)
        self.key_mlp = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.GELU(), nn.Conv2d(in_ch, key_dim, 1))
        self.motion_query = _mlp([width, width, key_dim])
        self.motion_basis = _mlp([width, width, 3])

        self.sky_dir_embed = nn.Linear(3 * (1 + 2 * 4), sky_hidden)
        self.sky_film = nn.Linear(width, 2 * sky_hidden)
        self.sky_out = nn.Sequential(
            nn.GELU(), nn.Linear(sky_hidden, sky_hidden), nn.GELU(), nn.Linear(sky_hidden, 3)
        )

        self.exposure_head = nn.Linear(width, 12)  # 3x3 matrix + bias, zero-init -> identity transform
        nn.init.zeros_(self.exposure_head.weight)
        nn.init.zeros_(self.exposure_head.bias)

    def with_head_hidden(self, head_hidden: int) -> GaussianDecoder:
        """This decoder with a residual head MLP of `head_hidden` units added: the same function until trained."""
        if self.gaussian_head_mlp is not None:
            raise ValueError(f"GaussianDecoder already has a head MLP ({self.config.head_hidden} units)")
        grown = GaussianDecoder.from_config(self.config, head_hidden=head_hidden).to(self.latent_embed.weight)
        missing, unexpected = grown.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not name.startswith("gaussian_head_mlp.") for name in missing):
            raise RuntimeError(f"with_head_hidden: unexpected {unexpected}, missing {missing}")
        return grown

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        latents: torch.Tensor,
        intrinsics: torch.Tensor,
        cam_to_ref: torch.Tensor,
        times: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Gaussians of the context frames.

        latents [B, Tc, V, C, h, w] (normalised), intrinsics [B, Tc, V, 3, 3] (pixels at (8h, 8w)),
        cam_to_ref [B, Tc, V, 4, 4], times [B, Tc] seconds ->
        {"means", "velocities", "scales": [B, N, 3], "quats": [B, N, 4] wxyz, "opacities", "times": [B, N],
         "colors": [B, N, 3] in [0, 1], "depth": [B, Tc, V, 1, H, W], "sky_feature": [B, D],
         "exposure": [B, V, 3, 4]} with N = Tc * V * H * W, H = 8h, W = 8w.
        """
        cfg = self.config
        b, tc, v, c, h, w = latents.shape
        if v > cfg.max_views:
            raise ValueError(f"GaussianDecoder: {v} views but max_views is {cfg.max_views}")
        lp, pp = cfg.latent_patch_size, self.pixel_patch
        if h % lp or w % lp:
            raise ValueError(f"GaussianDecoder: latent size {h}x{w} is not divisible by patch {lp}")
        height, width = h * VAE_DOWNSAMPLE, w * VAE_DOWNSAMPLE
        gh, gw = h // lp, w // lp
        n_img = b * tc * v
        dtype = self.latent_embed.weight.dtype

        origins, directions = camera_rays(intrinsics, cam_to_ref, height, width)  # [B, Tc, V, H, W, 3]
        plucker = plucker_rays(intrinsics, cam_to_ref, height, width)  # [B, Tc, V, 6, H, W]

        tokens = self.latent_embed(patchify(latents.reshape(n_img, c, h, w).to(dtype), lp))
        tokens = tokens + self.ray_embed(patchify(plucker.reshape(n_img, 6, height, width).to(dtype), pp))
        tokens = tokens + sincos_position_embedding_2d(gh, gw, cfg.width, tokens.device).to(dtype)
        t_emb = self.time_embed(
            sinusoidal_embedding(times / cfg.time_unit, cfg.width, max_period=1000.0).to(dtype)
        )  # [B, Tc, D]
        tokens = tokens.view(b, tc, v, gh * gw, cfg.width) + t_emb[:, :, None, None, :]
        tokens = tokens.reshape(b, tc * v * gh * gw, cfg.width)

        m = cfg.num_motion_tokens
        extra = torch.cat([self.motion_tokens, self.sky_token, self.exposure_tokens[:v]], dim=0)
        x = self.transformer(torch.cat([tokens, extra.to(dtype).expand(b, -1, -1)], dim=1))
        img_tok = x[:, : tokens.shape[1]]
        motion_tok = x[:, tokens.shape[1] : tokens.shape[1] + m]
        sky_tok = x[:, tokens.shape[1] + m]
        exp_tok = x[:, tokens.shape[1] + m + 1 :]

        # per-pixel Gaussian parameters [B, Tc, V, H, W, 12], activated in fp32
        head = self.gaussian_head(img_tok)
        if self.gaussian_head_mlp is not None:
            head = head + self.gaussian_head_mlp(img_tok)
        raw = unpatchify(head.reshape(n_img, gh * gw, -1), gh, gw, pp).float()
        raw = raw.view(b, tc, v, height, width, GAUSSIAN_CHANNELS)
        depth = cfg.near + torch.sigmoid(raw[..., 0:1]) * (cfg.far - cfg.near)
        scales = torch.exp(raw[..., 1:4] - 2.3).clamp(max=cfg.max_scale)
        quats = F.normalize(raw[..., 4:8], dim=-1)
        opacities = torch.sigmoid(raw[..., 8] - 2.0)
        colors = torch.sigmoid(raw[..., 9:12])
        means = origins.float() + depth * directions.float()

        # velocity: soft assignment of per-pixel keys to motion-token bases
        grid = img_tok.reshape(n_img, gh, gw, cfg.width).permute(0, 3, 1, 2)
        keys = self.key_mlp(self.key_upsampler(grid))  # [BTcV, K, H, W]
        keys = (
            keys.view(b, tc * v, cfg.key_dim, height * width).permute(0, 1, 3, 2).reshape(b, -1, cfg.key_dim)
        )
        queries = self.motion_query(motion_tok)  # [B, M, K]
        assign = torch.softmax(keys @ queries.transpose(1, 2) / cfg.velocity_temperature, dim=-1)
        velocities = (assign @ self.motion_basis(motion_tok)).float()  # [B, N, 3]

        affine = self.exposure_head(exp_tok).float().view(b, v, 3, 4)
        eye = torch.eye(3, 4, device=affine.device, dtype=affine.dtype)
        pix_times = times.float()[:, :, None].expand(b, tc, v * height * width).reshape(b, -1)
        return {
            "means": means.reshape(b, -1, 3),
            "velocities": velocities,
            "scales": scales.reshape(b, -1, 3),
            "quats": quats.reshape(b, -1, 4),
            "opacities": opacities.reshape(b, -1),
            "colors": colors.reshape(b, -1, 3),
            "times": pix_times,
            "depth": depth.permute(0, 1, 2, 5, 3, 4),
            "sky_feature": sky_tok.float(),
            "exposure": affine + eye,
        }

    # ------------------------------------------------------------------ rendering
    def sky_color(self, sky_feature: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """sky_feature [B, D], ray directions [B, ..., 3] (any scale) -> sky colour [B, ..., 3] in [0, 1]."""
        d = F.normalize(directions.float(), dim=-1)
        feat = self.sky_dir_embed(fourier_features(d, 4).to(self.sky_dir_embed.weight.dtype))
        gamma, beta = self.sky_film(sky_feature.to(feat.dtype)).chunk(2, dim=-1)
        shape = (gamma.shape[0],) + (1,) * (feat.dim() - 2) + (gamma.shape[-1],)
        feat = feat * (1 + gamma.view(shape)) + beta.view(shape)
        return torch.sigmoid(self.sky_out(feat).float())

    def _splat(
        self,
        gaussians: dict[str, torch.Tensor],
        target_intrinsics: torch.Tensor,
        target_cam_to_ref: torch.Tensor,
        target_times: torch.Tensor,
        height: int,
        width: int,
        render_mode: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Move the Gaussians to each target time and rasterize them (fp32) -> (renders [B, Tt, V', H, W, D],
        alphas [B, Tt, V', H, W, 1])."""
        b, tt = target_intrinsics.shape[:2]
        dt = target_times.float()[:, :, None] - gaussians["times"][:, None, :]  # [B, Tt, N]
        means = gaussians["means"][:, None] + gaussians["velocities"][:, None] * dt[..., None]

        def per_target(x: torch.Tensor) -> torch.Tensor:
            return x[:, None].expand(b, tt, *x.shape[1:])

        renders, alphas, _ = rasterize(
            means,
            per_target(gaussians["quats"]),
            per_target(gaussians["scales"]),
            per_target(gaussians["opacities"]),
            per_target(gaussians["colors"]),
            torch.linalg.inv(target_cam_to_ref.float()),
            target_intrinsics.float(),
            width,
            height,
            near_plane=self.config.near,
            far_plane=self.config.far,
            render_mode=render_mode,
        )
        return renders, alphas

    def render_depth(
        self,
        gaussians: dict[str, torch.Tensor],
        target_intrinsics: torch.Tensor,
        target_cam_to_ref: torch.Tensor,
        target_times: torch.Tensor,
        height: int,
        width: int,
    ) -> dict[str, torch.Tensor]:
        """`render` without colour, sky or exposure -> {"depth", "alpha": [B, Tt, V', 1, H, W]}."""
        with torch.autocast(device_type=target_intrinsics.device.type, enabled=False):
            depth, alphas = self._splat(
                gaussians, target_intrinsics, target_cam_to_ref, target_times, height, width, "ED"
            )
        return {"depth": depth.permute(0, 1, 2, 5, 3, 4), "alpha": alphas.permute(0, 1, 2, 5, 3, 4)}

    def render(
        self,
        gaussians: dict[str, torch.Tensor],
        target_intrinsics: torch.Tensor,
        target_cam_to_ref: torch.Tensor,
        target_times: torch.Tensor,
        height: int,
        width: int,
        target_view_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Move Gaussians to each target time and splat them into the target cameras (fp32).

        target_intrinsics [B, Tt, V', 3, 3], target_cam_to_ref [B, Tt, V', 4, 4], target_times [B, Tt] ->
        {"rgb": [B, Tt, V', 3, H, W] (≈[-1, 1], unclamped), "depth": [B, Tt, V', 1, H, W] metres,
         "alpha": [B, Tt, V', 1, H, W], "sky": [B, Tt, V', 3, H, W] in [0, 1]}.
        The per-view exposure affine of context view `target_view_ids[i]` is applied to target view i; without
        ids it is applied view by view when V' equals the number of context views, and not at all otherwise.
        """
        vt = target_intrinsics.shape[2]
        with torch.autocast(device_type=target_intrinsics.device.type, enabled=False):
            renders, alphas = self._splat(
                gaussians, target_intrinsics, target_cam_to_ref, target_times, height, width, "RGB+ED"
            )
            rgb, depth = renders[..., :3], renders[..., 3:4]  # [B, Tt, V', H, W, *]
            _, directions = camera_rays(target_intrinsics.float(), target_cam_to_ref.float(), height, width)
            sky = self.sky_color(gaussians["sky_feature"], directions)
            image = rgb + (1.0 - alphas) * sky
            exposure = gaussians["exposure"]
            if target_view_ids is not None:
                exposure = exposure[:, target_view_ids.to(exposure.device)]
            if exposure.shape[1] == vt:
                image = (
                    torch.einsum("bvij,btvhwj->btvhwi", exposure[..., :3], image)
                    + exposure[..., 3][:, None, :, None, None, :]
                )
        return {
            "rgb": (image * 2.0 - 1.0).permute(0, 1, 2, 5, 3, 4),
            "depth": depth.permute(0, 1, 2, 5, 3, 4),
            "alpha": alphas.permute(0, 1, 2, 5, 3, 4),
            "sky": sky.permute(0, 1, 2, 5, 3, 4),
        }

    def forward(
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
    ) -> dict[str, torch.Tensor]:
        """`predict` then `render`; returns the render dict plus "gaussians" (the `predict` dict)."""
        gaussians = self.predict(latents, intrinsics, cam_to_ref, times)
        out = self.render(
            gaussians, target_intrinsics, target_cam_to_ref, target_times, height, width, target_view_ids
        )
        out["gaussians"] = gaussians
        return out
