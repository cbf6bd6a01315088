"""Stage 1: fine-tune STORM-VAE (VAE + Gaussian decoder) on clips; `cvd-sim train vae --config ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from cvd_sim.training.engine import Engine, OptimConfig, RunConfig, load_config, resolve_config_path
from cvd_sim.training.losses import LossWeights, Perceptual, depth_loss, kl_divergence, sky_opacity_loss
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.utils.data import ConcatDataset, Dataset

from cvd_sim.cli import UserError
from cvd_sim.models.clip_cameras import clip_cameras
from cvd_sim.models.clip_data import Split, open_clips
from cvd_sim.models.storm_autoencoder import widen_decoder
from cvd_sim.models.storm_vae import StormVAE


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["tiny", "full"] = "tiny"
    init_from: Path | None = Field(None, description="a StormVAE folder to start from instead of the preset")
    vae_pretrained: Path | None = Field(None, description="local SD3.5-layout VAE folder loaded into the VAE")
    vae: dict[str, Any] = Field(default_factory=dict, description="AutoencoderKL config overrides")
    decoder: dict[str, Any] = Field(default_factory=dict, description="GaussianDecoder config overrides")
    widen_vae_decoder: list[int] | None = Field(
        None,
        description="VAE decoder widths (encoder order) to grow the decoder to, each the old one or twice it; "
        "function-preserving, so the latents and a DiT trained on them stay valid",
    )
    gaussian_head_hidden: int | None = Field(
        None,
        gt=0,
        description="add a residual MLP of this many units to the Gaussian head (same function at first)",
    )
    gradient_checkpointing: bool = False
    freeze: list[Literal["encoder", "vae_decoder", "gaussian_decoder"]] = Field(
        default_factory=list,
        description="parts left untrained: with `encoder` the latents, and a DiT trained on them, stay valid; "
        "a frozen decoder's branch (L_VAE or L_STORM) is not run",
    )


class DataSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path | list[Path] | None = Field(
        None, description="nuScenes-layout folder (SynthDrive or nuScenes), or a list of them read as one"
    )
    version: str = "v1.0-trainval"
    split: Split = Field("train", description="every 10th scene by name is held out as `val`")
    height: int = Field(64, gt=0, multiple_of=8)
    width: int = Field(112, gt=0, multiple_of=8)
    num_frames: int = Field(19, gt=0)
    clip_stride: int | None = Field(None, gt=0, description="frames between clip starts (default num_frames)")


class StageOneSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context_frames: list[int] = Field(default_factory=lambda: [0, 6, 12, 18], min_length=1)
    num_targets: int = Field(3, gt=0)
    render_views_per_target: int | None = Field(None, gt=0, description="random views rendered per target")
    vae_decode_images: int | None = Field(None, gt=0, description="context images decoded for L_VAE")


class VaeTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    stage: StageOneSection = Field(default_factory=StageOneSection)
    loss: LossWeights = Field(default_factory=LossWeights)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig

    @model_validator(mode="after")
    def _frames_fit(self) -> VaeTrainConfig:
        ctx = self.stage.context_frames
        if min(ctx) < 0 or max(ctx) >= self.data.num_frames:
            raise ValueError(
                f"stage.context_frames {ctx} must lie in [0, data.num_frames={self.data.num_frames})"
            )
        if self.stage.num_targets > self.data.num_frames:
            raise ValueError("stage.num_targets exceeds data.num_frames")
        renders = self.loss.storm > 0 and "gaussian_decoder" not in self.model.freeze
        if "vae_decoder" in self.model.freeze and not renders:
            raise ValueError(
                "model.freeze: a frozen vae_decoder with no Gaussian branch (gaussian_decoder frozen or "
                "loss.storm 0) leaves nothing to train"
            )
        return self


def build_model(section: ModelSection, seed: int = 0) -> StormVAE:
    """The preset or `init_from` folder, widened and frozen as `section` says; `seed` draws the widening's
    random shares."""
    if section.init_from is not None:
        if not section.init_from.is_dir():
            raise FileNotFoundError(
                f"init_from: folder {section.init_from} does not exist (train it first, e.g. "
                "`cvd-sim train vae --config tiny_plain`)"
            )
        model = StormVAE.from_pretrained(section.init_from)
    else:
        model = StormVAE.from_preset(
            section.preset,
            vae_pretrained=section.vae_pretrained,
            vae_overrides=section.vae,
            **section.decoder,
        )
    if section.widen_vae_decoder is not None:
        generator = torch.Generator().manual_seed(seed)
        model = StormVAE(
            widen_decoder(model.vae, section.widen_vae_decoder, generator), model.gaussian_decoder
        )
    if section.gaussian_head_hidden is not None:
        model = StormVAE(model.vae, model.gaussian_decoder.with_head_hidden(section.gaussian_head_hidden))
    if section.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    parts = {
        "encoder": model.vae.encoder,
        "vae_decoder": model.vae.decoder,
        "gaussian_decoder": model.gaussian_decoder,
    }
    for name in section.freeze:
        parts[name].requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------- one step
def sample_frames(
    num_frames: int, stage: StageOneSection, views: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Context frames, random target frames, target views and the context images decoded for L_VAE."""
    n_ctx = len(stage.context_frames) * views
    k_views = min(stage.render_views_per_target or views, views)
    return {
        "context": torch.tensor(stage.context_frames),
        "targets": torch.randperm(num_frames, generator=gen)[: stage.num_targets].sort().values,
        "target_views": torch.randperm(views, generator=gen)[:k_views].sort().values,
        "decode": torch.randperm(n_ctx, generator=gen)[: min(stage.vae_decode_images or n_ctx, n_ctx)],
    }


def forward_clip(
    model: torch.nn.Module,
    batch: dict[str, Any],
    pick: dict[str, torch.Tensor],
    ref: int,
    gen: torch.Generator,
    render: bool = True,
) -> dict:
    """Run the training forward on one batched clip with the frames in `pick`; `gen` draws the latent noise;
    render=False skips the Gaussian branch, an empty pick["decode"] the VAE decode."""
    k_c, c2r_c, t_c = clip_cameras(batch, pick["context"], ref)
    k_t, c2r_t, t_t = clip_cameras(batch, pick["targets"], ref)
    views = pick["target_views"].to(k_t.device)
    context_images = batch["images"][:, pick["context"].to(k_t.device)]
    return model(
        context_images,
        k_c,
        c2r_c,
        t_c,
        k_t[:, :, views],
        c2r_t[:, :, views],
        t_t,
        decode_index=pick["decode"],
        target_view_ids=views,
        generator=gen,
        render=render,
    )


def stage_one_loss(
    out: dict[str, Any],
    batch: dict[str, Any],
    pick: dict[str, torch.Tensor],
    w: LossWeights,
    perceptual: Perceptual,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_VAE + w.storm * L_STORM and its terms as floats. Without a render in `out` (w.storm == 0 or a frozen
    Gaussian decoder) L_VAE only; without a VAE decode (a frozen VAE decoder) L_VAE is the constant KL term."""
    device = out["mean"].device
    ctx, tgt, views = (pick[k].to(device) for k in ("context", "targets", "target_views"))
    images = batch["images"]
    b, _, v = images.shape[:3]
    use_lpips = step >= w.perceptual_start_step

    terms: dict[str, torch.Tensor] = {}
    terms["vae_kl"] = kl_divergence(out["mean"].float(), out["logvar"].float())
    l_vae = w.vae_kl * terms["vae_kl"]
    if "vae_recon" in out:
        decoded_gt = images[:, ctx].reshape(b, len(ctx) * v, *images.shape[3:])[:, out["vae_index"]]
        error = out["vae_recon"].float() - decoded_gt
        terms["vae_recon"] = (error.abs() if w.vae_recon_kind == "l1" else error.square()).mean()
        terms["vae_perceptual"] = (
            perceptual(out["vae_recon"], decoded_gt) if use_lpips else decoded_gt.new_zeros(())
        )
        l_vae = l_vae + w.vae_recon * terms["vae_recon"] + w.vae_perceptual * terms["vae_perceptual"]
    if "rgb" not in out:
        scalars = {f"loss_{k}": float(t.detach()) for k, t in terms.items()}
        return l_vae, {**scalars, "loss_vae": float(l_vae.detach())}
    target_images = images[:, tgt][:, :, views]
    terms["rgb"] = F.mse_loss(out["rgb"], target_images)
    terms["perceptual"] = perceptual(out["rgb"], target_images) if use_lpips else target_images.new_zeros(())
    terms["depth"] = depth_loss(out["depth"], batch["depth"][:, tgt][:, :, views], w.depth_kind)
    terms["sky"] = sky_opacity_loss(
        out["alpha"], batch["sky_mask"][:, tgt][:, :, views], batch["has_sky_mask"]
    )
    terms["velocity"] = out["gaussians"]["velocities"].square().mean()
    l_storm = (
        w.rgb * terms["rgb"]
        + w.perceptual * terms["perceptual"]
        + w.depth * terms["depth"]
        + w.sky * terms["sky"]
        + w.velocity * terms["velocity"]
    )
    loss = l_vae + w.storm * l_storm
    scalars = {f"loss_{k}": float(t.detach()) for k, t in terms.items()}
    scalars.update(loss_vae=float(l_vae.detach()), loss_storm=float(l_storm.detach()))
    return loss, scalars


def _row(images: torch.Tensor) -> torch.Tensor:
    """[V, 3, H, W] in [-1, 1] -> [3, H, V*W] in [0, 1]."""
    return torch.cat(list(images.float().clamp(-1, 1) * 0.5 + 0.5), dim=-1)


def _depth_row(depth: torch.Tensor, max_depth: float) -> torch.Tensor:
    """[V, 1, H, W] metres -> grey [3, H, V*W], near = bright."""
    grey = 1.0 - (depth.float() / max_depth).clamp(0, 1)
    return torch.cat(list(grey.expand(-1, 3, -1, -1)), dim=-1)


class StageOne:
    """The stage-1 objective bound to a config: `step` and `images` callbacks for the Engine."""

    def __init__(self, cfg: VaeTrainConfig, device: torch.device):
        self.cfg = cfg
        self.perceptual = Perceptual(cfg.loss.lpips_vgg_weights, device)
        self.weights = cfg.loss
        if not self.perceptual.available:
            self.weights = cfg.loss.model_copy(update={"vae_perceptual": 0.0, "perceptual": 0.0})
        self.render = self.weights.storm > 0 and "gaussian_decoder" not in cfg.model.freeze
        self.decode = "vae_decoder" not in cfg.model.freeze

    def _pick(self, batch: dict[str, Any], gen: torch.Generator) -> dict[str, torch.Tensor]:
        t, v = batch["images"].shape[1:3]
        if t <= max(self.cfg.stage.context_frames):
            raise UserError(
                f"clip has {t} frames; stage.context_frames needs {max(self.cfg.stage.context_frames) + 1}"
            )
        return sample_frames(t, self.cfg.stage, v, gen)

    def step(self, model, batch, gen: torch.Generator, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        pick = self._pick(batch, gen)
        if not self.decode:
            pick["decode"] = pick["decode"][:0]
        out = forward_clip(model, batch, pick, self.cfg.stage.context_frames[0], gen, render=self.render)
        return stage_one_loss(out, batch, pick, self.weights, self.perceptual, step)

    def images(self, model, batch, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Grid for sample 0: rows = input / VAE reconstruction (first context frame), target / GS render / depth."""
        pick = self._pick(batch, gen)
        pick["decode"] = torch.arange(batch["images"].shape[2])  # all views of the first context frame
        render = self.weights.storm > 0
        out = forward_clip(model, batch, pick, self.cfg.stage.context_frames[0], gen, render=render)
        grids = {
            "input_reconstruction": torch.cat(
                [_row(batch["images"][0, self.cfg.stage.context_frames[0]]), _row(out["vae_recon"][0])],
                dim=-2,
            )
        }
        if not render:
            return grids
        views = pick["target_views"].to(out["rgb"].device)
        target = batch["images"][0, pick["targets"][0].item()][views]
        gt_depth = batch["depth"][0, pick["targets"][0].item()][views]
        max_depth = max(float(gt_depth.max()), 1.0)
        return {
            **grids,
            "target_render_depth": torch.cat(
                [
                    _row(target),
                    _row(out["rgb"][0, 0]),
                    _depth_row(gt_depth, max_depth),
                    _depth_row(out["depth"][0, 0], max_depth),
                ],
                dim=-2,
            ),
        }


# ---------------------------------------------------------------------------------------------- entry points
def build_dataset(data: DataSection, config_path: Path) -> Dataset:
    """The clip loader of `cvd_sim.data` over the nuScenes-layout folder(s) named in the config (several are
    concatenated in the order given)."""
    if data.root is None or data.root == []:
        raise UserError(
            f"{config_path}: data.root: a nuScenes-layout folder is needed (e.g. from `cvd-sim data synth`)"
        )
    roots = data.root if isinstance(data.root, list) else [data.root]
    parts = []
    for root in roots:
        if not root.is_dir():
            raise UserError(f"{config_path}: data.root: folder {root} does not exist")
        try:
            parts.append(
                open_clips(
                    root, data.version, data.split, data.num_frames, data.height, data.width, data.clip_stride
                )
            )
        except (ValueError, FileNotFoundError, AssertionError) as err:
            raise UserError(f"{config_path}: data: {err}") from err
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def _save_model(model: torch.nn.Module, folder: Path) -> None:
    model.save_pretrained(folder)


def _load_model(model: torch.nn.Module, folder: Path) -> None:
    model.load_state_dict(StormVAE.from_pretrained(folder).state_dict())


def train_vae(
    config: str | Path, resume: bool = False, stop_at: int | None = None, dataset: Dataset | None = None
) -> list[dict[str, float]]:
    """Train from a preset name or YAML path; `dataset` (any Dataset of clip dicts) overrides `data:`.
    Returns the per-step scalars of this run."""
    path = resolve_config_path(str(config), "vae")
    cfg = load_config(path, VaeTrainConfig)
    if dataset is None:
        dataset = build_dataset(cfg.data, path)
    torch.manual_seed(cfg.run.seed)  # the initial weights depend on the seed only
    try:
        model = build_model(cfg.model, cfg.run.seed)
    except (TypeError, ValueError, KeyError, OSError) as err:
        raise UserError(f"{path}: model: {err}".replace("\n", " ")) from err
    objective = StageOne(cfg, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    engine = Engine(
        cfg.run,
        cfg.optim,
        model,
        dataset,
        objective.step,
        _save_model,
        _load_model,
        image_fn=objective.images,
        config_dump=cfg.model_dump(mode="json"),
    )
    history = engine.train(resume=resume, stop_at=stop_at)
    if engine.accelerator.is_main_process and engine.step >= cfg.run.max_steps:
        engine.unwrapped.save_pretrained(cfg.run.out_dir / "final")
        engine.accelerator.print(f"saved {cfg.run.out_dir / 'final'}")
    return history


def run_from_cli(config: str, resume: bool, stop_at: int | None) -> int:
    """`cvd-sim train vae` handler body."""
    train_vae(config, resume=resume, stop_at=stop_at)
    return 0
