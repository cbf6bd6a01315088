"""Stage 2: train the CVD-STORM DiT (and its byte text encoder) on cached STORM-VAE latents.

`cvd-sim train dit --config tiny|full|PATH [--resume] [--stop-at N]`. The STORM-VAE stays frozen: its encoder
fills a latent cache once (`training/latent_cache.py`); every step then crops a window of frames at one of the
configured resolutions and runs `cvd_sim.models.rectified_flow.rectified_flow_step` (logit-normal sigmas with a
shift, 0-3 clean reference frames excluded from the loss, per-condition CFG dropout, per-sample disabling of
temporal / cross-view blocks) under the shared Engine (accelerate, atomic checkpoints, exact resume,
TensorBoard, progress bar). The final weights are written as a complete WorldModel folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from cvd_sim.training.dit_distill import Distillation, DistillSection
from cvd_sim.training.engine import Engine, OptimConfig, RunConfig, load_config, resolve_config_path
from cvd_sim.training.latent_cache import LatentCache, build_latent_cache, resolution_key, window_cameras
from diffusers import FlowMatchEulerDiscreteScheduler
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.data import Dataset

from cvd_sim.cli import UserError
from cvd_sim.models.clip_data import Split, open_clips
from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.dit_conditions import DiTConditions
from cvd_sim.models.rectified_flow import RectifiedFlowConfig, rectified_flow_step
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.models.text_encoder import ByteTextEncoder, HFTextEncoder, load_text_encoder
from cvd_sim.pipelines.world_model import WorldModel


# ---------------------------------------------------------------------------------------------- config
class TextSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["byte", "hf"] = Field("byte", description="byte: small encoder trained with the DiT")
    max_length: int = Field(32, gt=2)
    num_layers: int = Field(2, gt=0)
    num_heads: int = Field(4, gt=0)
    hf_folders: list[Path] = Field(default_factory=list, description="local CLIP/T5 folders (kind: hf)")


class DiTModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storm_vae: Path | None = Field(None, description="trained STORM-VAE folder (frozen; encodes the latents)")
    preset: Literal["tiny", "full"] = "tiny"
    dit: dict[str, Any] = Field(default_factory=dict, description="DiTConfig overrides")
    sd3_pretrained: Path | None = Field(None, description="local diffusers SD3/SD3.5 transformer folder")
    init_from: Path | None = Field(None, description="folder with dit/ and text_encoder/ to start from")
    text: TextSection = Field(default_factory=TextSection)
    gradient_checkpointing: bool = False


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    height: int = Field(gt=0, multiple_of=16, description="latent side must be divisible by the patch (2)")
    width: int = Field(gt=0, multiple_of=16)
    prob: float = Field(gt=0)


class DiTDataSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path | None = Field(None, description="nuScenes-layout folder (SynthDrive or nuScenes)")
    version: str = "v1.0-trainval"
    split: Split = "train"
    height: int = Field(64, gt=0, multiple_of=8, description="size the clips are read at")
    width: int = Field(112, gt=0, multiple_of=8)
    num_frames: int = Field(24, gt=0, description="frames per cached clip; windows are cropped from it")
    clip_stride: int | None = Field(None, gt=0)
    cache_dir: Path | None = Field(None, description="latent cache folder (default run.out_dir/latents)")
    resolutions: list[Resolution] = Field(
        default_factory=lambda: [Resolution(height=64, width=112, prob=1.0)], min_length=1
    )


class StageTwoSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_frames: int = Field(6, gt=1, description="frames per training window (references included)")
    flow: RectifiedFlowConfig = Field(default_factory=RectifiedFlowConfig)


class DiTTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: DiTModelSection = Field(default_factory=DiTModelSection)
    data: DiTDataSection = Field(default_factory=DiTDataSection)
    stage: StageTwoSection = Field(default_factory=StageTwoSection)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig
    distill: DistillSection | None = Field(
        None,
        description="distil model.init_from's DiT into a one-step student instead (training/dit_distill.py)",
    )

    @model_validator(mode="after")
    def _window_fits(self) -> DiTTrainConfig:
        if self.stage.window_frames > self.data.num_frames:
            raise ValueError(
                f"stage.window_frames={self.stage.window_frames} exceeds data.num_frames={self.data.num_frames}"
            )
        if self.model.text.kind == "hf" and not self.model.text.hf_folders:
            raise ValueError("model.text.hf_folders: kind 'hf' needs at least one local CLIP/T5 folder")
        if self.distill is not None and self.model.init_from is None:
            raise ValueError("model.init_from: distill needs the teacher, a WorldModel folder")
        return self


# ---------------------------------------------------------------------------------------------- model
class StageTwoModel(nn.Module):
    """What stage 2 optimises: the DiT and (byte kind) the text encoder. Calling it runs the DiT."""

    def __init__(self, dit: CVDStormDiT, text_encoder: ByteTextEncoder | HFTextEncoder):
        super().__init__()
        self.dit = dit
        self.text_encoder = text_encoder

    def forward(self, *args, **kwargs):
        return self.dit(*args, **kwargs)

    def save_pretrained(self, folder: Path) -> None:
        """folder/dit and folder/text_encoder (diffusers / HF layouts)."""
        self.dit.save_pretrained(Path(folder) / "dit", safe_serialization=True)
        self.text_encoder.save_pretrained(Path(folder) / "text_encoder")

    @classmethod
    def from_pretrained(cls, folder: Path) -> StageTwoModel:
        folder = Path(folder)
        return cls(CVDStormDiT.from_pretrained(folder / "dit"), load_text_encoder(folder / "text_encoder"))


def build_stage_two_model(section: DiTModelSection) -> StageTwoModel:
    """A fresh (or `init_from` / SD3-initialised) DiT with a text encoder whose widths match it."""
    if section.init_from is not None:
        model = StageTwoModel.from_pretrained(section.init_from)
    else:
        if section.sd3_pretrained is not None:
            dit = CVDStormDiT.from_sd3(section.sd3_pretrained, **section.dit)
        else:
            dit = CVDStormDiT.from_preset(section.preset, **section.dit)
        text = section.text
        if text.kind == "hf":
            encoder: ByteTextEncoder | HFTextEncoder = HFTextEncoder(text.hf_folders, text.max_length)
        else:
            encoder = ByteTextEncoder(
                max_length=text.max_length,
                width=dit.config.joint_attention_dim,
                num_layers=text.num_layers,
                num_heads=text.num_heads,
                pooled_dim=dit.config.pooled_projection_dim,
            )
        model = StageTwoModel(dit, encoder)
    enc = model.text_encoder
    if (enc.hidden_size, enc.pooled_size) != (
        model.dit.config.joint_attention_dim,
        model.dit.config.pooled_projection_dim,
    ):
        raise ValueError(
            f"text encoder widths ({enc.hidden_size}, {enc.pooled_size}) do not match the DiT's "
            f"joint_attention_dim / pooled_projection_dim "
            f"({model.dit.config.joint_attention_dim}, {model.dit.config.pooled_projection_dim})"
        )
    if isinstance(enc, HFTextEncoder):
        enc.requires_grad_(False)  # pretrained CLIP/T5 stay frozen
    if section.gradient_checkpointing:
        model.dit.enable_gradient_checkpointing()
    return model


# ---------------------------------------------------------------------------------------------- one step
def _unwrap(model: nn.Module) -> StageTwoModel:
    return getattr(model, "module", model)


class StageTwo:
    """The stage-2 objective bound to a config: the Engine's `step` callback, and its `images` callback when a
    (frozen) STORM-VAE is given to decode latents for TensorBoard."""

    def __init__(self, cfg: DiTTrainConfig, storm_vae: StormVAE | None = None):
        self.cfg = cfg
        self.storm_vae = storm_vae
        self.keys = [resolution_key(r.height, r.width) for r in cfg.data.resolutions]
        self.probs = torch.tensor([r.prob for r in cfg.data.resolutions], dtype=torch.float64)

    def pick_window(self, num_frames: int, gen: torch.Generator) -> tuple[str, int, int]:
        """(resolution key, start, stop) of this step's window, drawn from `gen`."""
        key = self.keys[int(torch.multinomial(self.probs, 1, generator=gen))]
        width = self.cfg.stage.window_frames
        if num_frames < width:
            raise UserError(f"cached clips have {num_frames} frames; stage.window_frames needs {width}")
        start = int(torch.randint(0, num_frames - width + 1, (1,), generator=gen))
        return key, start, start + width

    def conditions(self, model: nn.Module, batch: dict[str, Any], key: str, start: int, stop: int):
        """(latents [B, W, V, 16, h, w], DiTConditions, null_hidden [1, L, D], null_pooled [1, P])."""
        encoder = _unwrap(model).text_encoder
        hidden, pooled = encoder.encode(list(batch["text"]))
        null_hidden, null_pooled = encoder.encode([""])
        intrinsics, cam_to_ref = window_cameras(
            batch[f"intrinsics_{key}"], batch["cam_to_ego"], batch["ego_to_world"], start, stop
        )
        device = batch[f"latents_{key}"].device
        cond = DiTConditions(
            text_hidden=hidden,
            text_pooled=pooled,
            layout=batch[f"layout_{key}"][:, start:stop],
            intrinsics=intrinsics.to(device),
            cam_to_ref=cam_to_ref.to(device),
        )
        return batch[f"latents_{key}"][:, start:stop].float(), cond, null_hidden, null_pooled

    def forward_window(
        self, model: nn.Module, batch: dict[str, Any], gen: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Loss of one random window and the step's details (rectified_flow_step info + window, resolution)."""
        num_frames = batch["ego_to_world"].shape[1]
        key, start, stop = self.pick_window(num_frames, gen)
        latents, cond, null_hidden, null_pooled = self.conditions(model, batch, key, start, stop)
        loss, info = rectified_flow_step(
            model, latents, cond, null_hidden, null_pooled, self.cfg.stage.flow, gen
        )
        info.update(resolution=key, window=(start, stop), latents=latents, conditions=cond)
        return loss, info

    def step(self, model, batch, gen: torch.Generator, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        loss, info = self.forward_window(model, batch, gen)
        sigmas, mask = info["sigmas"], info["loss_mask"]
        scalars = {
            "references": float(info["reference_counts"].float().mean()),
            "sigma_mean": float(sigmas[mask].mean()) if mask.any() else 0.0,
            "latent_height": float(info["latents"].shape[-2]),
        }
        return loss, scalars

    def images(self, model, batch, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Sample 0, last window frame, all views: rows = decoded clean latents / decoded one-step estimate
        x0_hat = x_t - sigma * v_pred = x0 + sigma * (target - pred), as [3, 2H, V*W] in [0, 1]."""
        _, info = self.forward_window(model, batch, gen)
        sigma = info["sigmas"][0, -1][:, None, None, None]
        x0 = info["latents"][0, -1]
        x0_hat = x0 + sigma * (info["target"][0, -1] - info["pred"][0, -1])
        vae = self.storm_vae.to(x0.device)
        rows = [torch.cat(list(vae.decode(x.float()) * 0.5 + 0.5), dim=-1) for x in (x0, x0_hat)]
        return {"clean_vs_one_step_estimate": torch.cat(rows, dim=-2)}


# ---------------------------------------------------------------------------------------------- entry points
def cache_folder(cfg: DiTTrainConfig) -> Path:
    return cfg.data.cache_dir or cfg.run.out_dir / "latents"


def build_cached_dataset(cfg: DiTTrainConfig, config_path: Path, progress: bool = True) -> LatentCache:
    """Open the clips named in `data:` and encode them with the frozen STORM-VAE (resumable) -> LatentCache."""
    data, vae = cfg.data, cfg.model.storm_vae
    if vae is None or not (vae / "vae").is_dir():
        raise UserError(
            f"{config_path}: model.storm_vae: a trained STORM-VAE folder is needed "
            f"(got {vae}); train one with `cvd-sim train vae --config tiny`"
        )
    if data.root is None or not data.root.is_dir():
        raise UserError(
            f"{config_path}: data.root: nuScenes-layout folder {data.root} not found (`cvd-sim data synth`)"
        )
    try:
        clips = open_clips(
            data.root, data.version, data.split, data.num_frames, data.height, data.width, data.clip_stride
        )
    except (ValueError, FileNotFoundError, AssertionError) as err:
        raise UserError(f"{config_path}: data: {err}") from err
    data_id = data.model_dump(mode="json", exclude={"cache_dir", "resolutions"})
    resolutions = [(r.height, r.width) for r in data.resolutions]
    folder = build_latent_cache(vae, clips, cache_folder(cfg), resolutions, data_id, progress=progress)
    return LatentCache(folder)


def _save_model(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(folder)


def _load_model(model: nn.Module, folder: Path) -> None:
    model.load_state_dict(StageTwoModel.from_pretrained(folder).state_dict())


def save_world_model(model: StageTwoModel, storm_vae: StormVAE, shift: float, folder: Path) -> None:
    """vae/, gaussian_decoder/, dit/, text_encoder/, scheduler/ (sampling shift = the training shift)."""
    WorldModel(
        storm_vae, model.dit, model.text_encoder, FlowMatchEulerDiscreteScheduler(shift=shift)
    ).save_pretrained(folder)


def train_dit(
    config: str | Path,
    resume: bool = False,
    stop_at: int | None = None,
    dataset: Dataset | None = None,
    storm_vae: StormVAE | None = None,
) -> list[dict[str, float]]:
    """Train from a preset name or YAML path. `dataset` (items as `LatentCache` yields) overrides `data:`;
    `storm_vae` (else `model.storm_vae`) goes into the final WorldModel folder. Returns this run's scalars."""
    path = resolve_config_path(str(config), "dit")
    cfg = load_config(path, DiTTrainConfig)
    init = cfg.model.init_from
    if init is not None and not all((init / part).is_dir() for part in ("dit", "text_encoder")):
        raise UserError(
            f"{path}: model.init_from: {init} has no dit/ and text_encoder/ "
            "(give a WorldModel folder or a stage-2 run's final/)"
        )
    if dataset is None:
        dataset = build_cached_dataset(cfg, path)
    teacher = None if cfg.distill is None else load_teacher(init, path)
    torch.manual_seed(cfg.run.seed)  # the initial weights depend on the seed only
    try:
        model = build_stage_two_model(cfg.model)
    except (TypeError, ValueError, KeyError, OSError) as err:
        raise UserError(f"{path}: model: {err}".replace("\n", " ")) from err
    if storm_vae is None and cfg.model.storm_vae is not None:
        storm_vae = StormVAE.from_pretrained(cfg.model.storm_vae)
    if storm_vae is not None:
        storm_vae.eval().requires_grad_(False)
    objective = StageTwo(cfg, storm_vae)
    step_fn, image_fn = objective.step, objective.images if storm_vae is not None else None
    if teacher is not None:
        model.text_encoder.requires_grad_(False)  # the teacher's; only the DiT is distilled
        distillation = Distillation(cfg.distill, objective, teacher)
        step_fn, image_fn = distillation.step, distillation.images
    engine = Engine(
        cfg.run,
        cfg.optim,
        model,
        dataset,
        step_fn,
        _save_model,
        _load_model,
        image_fn=image_fn,
        config_dump=cfg.model_dump(mode="json"),
    )
    history = engine.train(resume=resume, stop_at=stop_at)
    if engine.accelerator.is_main_process and engine.step >= cfg.run.max_steps:
        final = cfg.run.out_dir / "final"
        if teacher is not None:  # the teacher's folder plus the student
            teacher.dit_distilled = engine.unwrapped.dit
            teacher.save_pretrained(final)
        elif storm_vae is None:  # no VAE to bundle: the trained parts only
            engine.unwrapped.save_pretrained(final)
        else:
            save_world_model(engine.unwrapped, storm_vae, cfg.stage.flow.shift, final)
        engine.accelerator.print(f"saved {final}")
    return history


def load_teacher(folder: Path, config_path: Path) -> WorldModel:
    """The frozen WorldModel whose DiT `distill:` distils; a clear error when the folder is not one."""
    try:
        teacher = WorldModel.from_pretrained(folder)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise UserError(f"{config_path}: model.init_from: {err}".replace("\n", " ")) from err
    teacher.dit.requires_grad_(False)
    return teacher


def run_from_cli(config: str, resume: bool, stop_at: int | None) -> int:
    """`cvd-sim train dit` handler body."""
    train_dit(config, resume=resume, stop_at=stop_at)
    return 0
