"""Training machinery shared by the stage-1 (VAE) and stage-2 (DiT) trainers.

accelerate (CPU, one GPU, many GPUs/nodes via `accelerate launch`), typed YAML configs, AdamW + cosine
schedule with warm-up, gradient clipping, bf16 autocast (CUDA; CPU when asked), atomic checksummed checkpoints,
exact `--resume` (model, optimiser, schedule, RNG states, data position), TensorBoard scalars and image grids,
a JSONL metrics log and a tqdm bar.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from cvd_sim.cli import UserError

CONFIG_DIR = Path(__file__).parent / "configs"
ConfigT = TypeVar("ConfigT", bound=BaseModel)
IMAGE_STREAM = 1_000_000  # generator stream for TensorBoard images, apart from every rank's training stream


# ---------------------------------------------------------------------------------------------- configs
class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(4e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    grad_clip: float = Field(3.0, gt=0)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_dir: Path
    max_steps: int = Field(gt=0)
    batch_size: int = Field(1, gt=0, description="clips per process per step")
    seed: int = 0
    checkpoint_every: int = Field(100, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    log_every: int = Field(10, gt=0)
    image_every: int = Field(100, gt=0)
    num_workers: int = Field(0, ge=0)
    mixed_precision: Literal["no", "bf16"] = Field("bf16", description="bf16 autocast on CUDA")
    cpu_bf16: bool = Field(
        False, description="bf16 autocast on CPU too (pays off on CPUs with avx512_bf16 or AMX)"
    )

    @model_validator(mode="after")
    def _cpu_bf16_needs_bf16(self) -> RunConfig:
        if self.cpu_bf16 and self.mixed_precision != "bf16":
            raise ValueError("cpu_bf16: true needs mixed_precision: bf16")
        return self


def resolve_config_path(preset_or_path: str, kind: str) -> Path:
    """A YAML path, or a preset name `P` meaning `training/configs/{kind}_{P}.yaml`."""
    path = Path(preset_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        return path
    preset = CONFIG_DIR / f"{kind}_{preset_or_path}.yaml"
    if not preset.is_file():
        names = sorted(p.stem[len(kind) + 1 :] for p in CONFIG_DIR.glob(f"{kind}_*.yaml"))
        raise UserError(f"{preset_or_path}: not a file and not a {kind} preset (presets: {', '.join(names)})")
    return preset


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_config_mapping(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's mapping with its `base:` chain resolved (a path relative to the file)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise UserError(f"{path}: invalid YAML: {err}".replace("\n", " ")) from err
    if not isinstance(raw, dict):
        raise UserError(f"{path}: top level must be a mapping")
    if "base" not in raw:
        return raw
    name = raw.pop("base")
    if not isinstance(name, str):
        raise UserError(f"{path}: base: must be the path of another config file, got {name!r}")
    base = (path.parent / name).resolve()
    if base in seen or base == path.resolve():
        raise UserError(f"{path}: base: {name} leads back to itself")
    if not base.is_file():
        raise UserError(f"{path}: base: {base} not found")
    return _merged(read_config_mapping(base, (*seen, path.resolve())), raw)


def load_config(path: str | Path, schema: type[ConfigT]) -> ConfigT:
    """Read YAML into a pydantic model; any problem raises UserError naming the file and the field.

    `base: OTHER.yaml` (relative to the file) starts from another config: its mappings are merged key by key
    and everything else this file names replaces the base's value."""
    path = Path(path)
    raw = read_config_mapping(path)
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise UserError(f"{path}: {field}: {first['msg']}{more}") from err


# ---------------------------------------------------------------------------------------------- schedule, RNG
def cosine_with_warmup(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear 0->1 over `warmup` steps, then cosine 1 -> min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator determined by (seed, step, rank): per-step randomness survives a resume exactly."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002 (the global state datasets may use)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StepSampler(Sampler[int]):
    """Dataset indices for one process, from step `start` on: epochs are seeded permutations of the dataset,
    global batch = batch_size * world_size, and rank r takes its slice of every global batch."""

    def __init__(
        self, length: int, batch_size: int, world_size: int, rank: int, seed: int, start: int, stop: int
    ):
        self.length, self.batch_size, self.world_size, self.rank = length, batch_size, world_size, rank
        self.seed, self.start, self.stop = seed, start, stop

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(
            self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        )

    def __iter__(self) -> Iterator[int]:
        global_batch = self.batch_size * self.world_size
        epoch, perm = -1, None
        for step in range(self.start, self.stop):
            first = step * global_batch + self.rank * self.batch_size
            for pos in range(first, first + self.batch_size):
                if pos // self.length != epoch:
                    epoch = pos // self.length
                    perm = self._permutation(epoch)
                yield int(perm[pos % self.length])

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch_size


# ---------------------------------------------------------------------------------------------- checkpoints
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def latest_checkpoint(out_dir: Path) -> Path | None:
    pointer = out_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    return out_dir / "checkpoints" / pointer.read_text().strip()


def verify_checkpoint(ckpt: Path) -> dict[str, Any]:
    """Check every file against the manifest; returns the trainer state. Raises UserError when damaged."""
    manifest_path = ckpt / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{manifest_path}: checkpoint manifest missing or unreadable ({err})") from err
    for rel, digest in manifest["sha256"].items():
        file = ckpt / rel
        if not file.is_file():
            raise UserError(f"{ckpt}: checkpoint is incomplete, {rel} is missing")
        if _sha256(file) != digest:
            raise UserError(
                f"{file}: checkpoint file is corrupted (checksum mismatch); delete {ckpt} to resume from an "
                "earlier checkpoint"
            )
    return manifest["state"]


# ---------------------------------------------------------------------------------------------- the loop
StepFn = Callable[
    [torch.nn.Module, dict[str, Any], torch.Generator, int], tuple[torch.Tensor, dict[str, float]]
]
ImageFn = Callable[[torch.nn.Module, dict[str, Any], torch.Generator], dict[str, torch.Tensor]]


class Engine:
    """Runs `step_fn` for `run.max_steps` optimiser steps over `dataset` (any map-style Dataset of clip dicts).

    step_fn(model, batch, generator, step) -> (loss, scalars); image_fn(model, batch, generator) ->
    {name: [3, H, W] in [0, 1]} for TensorBoard. `save_model(model, folder)` writes the weights that
    `load_model(model, folder)` reads back (diffusers-style folders).
    """

    def __init__(
        self,
        run: RunConfig,
        optim: OptimConfig,
        model: torch.nn.Module,
        dataset: Dataset,
        step_fn: StepFn,
        save_model: Callable[[torch.nn.Module, Path], None],
        load_model: Callable[[torch.nn.Module, Path], None],
        image_fn: ImageFn | None = None,
        config_dump: dict[str, Any] | None = None,
    ):
        self.run, self.optim_cfg = run, optim
        self.dataset, self.step_fn, self.image_fn = dataset, step_fn, image_fn
        self.save_model, self.load_model = save_model, load_model
        self.config_dump = config_dump or {}
        cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(
            mixed_precision=run.mixed_precision if cuda or run.cpu_bf16 else "no",
            cpu=not cuda,
            step_scheduler_with_optimizer=False,
        )
        torch.manual_seed(run.seed)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: cosine_with_warmup(s, optim.warmup_steps, run.max_steps, optim.min_lr_ratio),
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.step = 0

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        root = self.run.out_dir / "checkpoints"
        name = f"step_{self.step:08d}"
        tmp = root / f".{name}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        torch.save(_rng_state(), tmp / f"rng_{acc.process_index}.pt")
        acc.wait_for_everyone()
        final = root / name
        if acc.is_main_process:
            self.save_model(self.unwrapped, tmp / "model")
            torch.save(self.optimizer.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            state = {"step": self.step, "world_size": acc.num_processes, "config": self.config_dump}
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            manifest = {"state": state, "sha256": {str(p.relative_to(tmp)): _sha256(p) for p in files}}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            _write_atomic(root / "latest", name)
            for old in sorted(root.glob("step_*"))[: -self.run.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, ckpt: Path) -> None:
        state = verify_checkpoint(ckpt)
        acc = self.accelerator
        if state["world_size"] != acc.num_processes:
            raise UserError(
                f"{ckpt}: saved with {state['world_size']} processes, resuming with {acc.num_processes}; "
                "the data order would differ"
            )
        try:
            self.load_model(self.unwrapped, ckpt / "model")
            self.optimizer.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
            self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
            _set_rng_state(torch.load(ckpt / f"rng_{acc.process_index}.pt", weights_only=False))
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            raise UserError(f"{ckpt}: cannot load checkpoint: {err}".replace("\n", " ")) from err
        self.step = int(state["step"])

    # ------------------------------------------------------------------ training
    def _loader(self) -> DataLoader:
        acc = self.accelerator
        sampler = StepSampler(
            len(self.dataset),
            self.run.batch_size,
            acc.num_processes,
            acc.process_index,
            self.run.seed,
            self.step,
            self.run.max_steps,
        )
        return DataLoader(
            self.dataset,
            batch_size=self.run.batch_size,
            sampler=sampler,
            num_workers=self.run.num_workers,
            generator=torch.Generator().manual_seed(self.run.seed),  # keeps the global RNG untouched
        )

    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(self.accelerator.device)
        if isinstance(batch, dict):
            return {k: self._to_device(v) for k, v in batch.items()}
        return batch

    def _truncate_metrics(self, path: Path) -> None:
        """Drop log lines past the resumed step (written by a run that was killed after its checkpoint)."""
        if not path.is_file():
            return
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= self.step]
        _write_atomic(path, "".join(ln + "\n" for ln in lines))

    def train(self, resume: bool = False, stop_at: int | None = None) -> list[dict[str, float]]:
        """Train to `run.max_steps` (or stop after step `stop_at`, checkpointing). Returns this run's scalars."""
        acc, run = self.accelerator, self.run
        if resume:
            ckpt = latest_checkpoint(run.out_dir)
            if ckpt is None:
                acc.print(f"no checkpoint in {run.out_dir / 'checkpoints'}; starting from step 0")
            else:
                self.load_checkpoint(ckpt)
                acc.print(f"resumed from {ckpt} at step {self.step}")
        end = run.max_steps if stop_at is None else min(stop_at, run.max_steps)
        writer = None
        metrics_path = run.out_dir / "metrics.jsonl"
        if acc.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            run.out_dir.mkdir(parents=True, exist_ok=True)
            self._truncate_metrics(metrics_path)
            writer = SummaryWriter(str(run.out_dir / "tensorboard"), purge_step=self.step + 1)
        history: list[dict[str, float]] = []
        bar = tqdm(total=end, initial=self.step, desc="train", disable=not acc.is_local_main_process)
        self.model.train()
        for batch in self._loader():
            if self.step >= end:
                break
            batch = self._to_device(batch)
            gen = step_generator(run.seed, self.step, acc.process_index)
            loss, scalars = self.step_fn(self.model, batch, gen, self.step)
            self.optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), self.optim_cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            loss_mean = acc.reduce(loss.detach().float(), reduction="mean").item()
            record = {
                "step": self.step,
                "loss": loss_mean,
                "grad_norm": float(grad_norm),
                "lr": self.scheduler.get_last_lr()[0],
                **scalars,
            }
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean:.4f}")
            if writer is not None:
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if self.step % run.log_every == 0 or self.step == end:
                    for key, value in record.items():
                        if key != "step":
                            writer.add_scalar(f"train/{key}", value, self.step)
                if self.image_fn is not None and (self.step % run.image_every == 0 or self.step == end):
                    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # leaves the training RNG alone
                        images = self.image_fn(
                            self.unwrapped, batch, step_generator(run.seed, self.step, IMAGE_STREAM)
                        )
                    for name, image in images.items():
                        writer.add_image(f"images/{name}", image.clamp(0, 1).cpu(), self.step)
            if self.step % run.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
        bar.close()
        if writer is not None:
            writer.close()
        return history
