"""Stage 2b, one-step distillation: the student's objective is the env's 1-step sampler, the teacher is the
fast sampler, a run brings the student to the teacher and resumes exactly, and the env picks the student."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.envs.worldmodel_backend import WorldModelBackend
from cvd_sim.envs.worldmodel_options import WorldModelOptions
from cvd_sim.envs.worldmodel_random import random_world_model
from cvd_sim.envs.worldmodel_sampler import sample_frames
from cvd_sim.training.dit_distill import Distillation, DistillSection, one_step_sample
from cvd_sim.training.dit_trainer import DiTTrainConfig, StageTwo, StageTwoModel, train_dit
from cvd_sim.training.engine import load_config
from cvd_sim.training.latent_cache import LatentCache

from cvd_sim.cli import UserError
from cvd_sim.pipelines.world_model import WorldModel

sys.path.insert(0, str(Path(__file__).parent))
from test_training_dit_trainer import build_box_cache, small_config


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A latent cache and a briefly trained causal WorldModel folder (the teacher)."""
    built = build_box_cache(tmp_path_factory.mktemp("distill"))
    root, vae, cache = built["root"], built["vae"], LatentCache(built["folder"])
    config = small_config(root, "teacher", run={"max_steps": 4})
    raw = yaml.safe_load(config.read_text())
    raw["model"]["dit"] = {**raw["model"]["dit"], "causal_temporal": True}
    config.write_text(yaml.safe_dump(raw))
    train_dit(config, dataset=cache, storm_vae=vae)
    return {"root": root, "cache": cache, "vae": vae, "folder": root / "teacher" / "final"}


def distill_config(teacher, folder: Path, name: str, steps: int) -> Path:
    path = small_config(folder, name, run={"max_steps": steps, "checkpoint_every": 5, "image_every": 1000})
    raw = yaml.safe_load(path.read_text())
    raw["model"]["init_from"] = str(teacher["folder"])
    raw["distill"] = {"teacher_steps": 3, "teacher_shift": 10.0, "reference_probs": [0.2, 0.0, 0.0, 0.8]}
    path.write_text(yaml.safe_dump(raw))
    return path


def as_batch(item: dict) -> dict:
    """One cached clip as a batch of one, as the DataLoader would collate it."""
    return {key: (v[None] if torch.is_tensor(v) else [v]) for key, v in item.items()}


def window(teacher):
    batch = as_batch(teacher["cache"][0])
    model = StageTwoModel.from_pretrained(teacher["folder"])
    stage = StageTwo(load_config(small_config(teacher["root"], "probe"), DiTTrainConfig))
    latents, cond, _, _ = stage.conditions(model, batch, "16x32", 0, 4)
    return latents, cond


@pytest.mark.parametrize("k", [0, 3])
def test_student_objective_is_the_one_step_euler_sampler(teacher, k):
    """`one_step_sample` is what the env's sampler does with num_steps=1 (diffusers' scheduler, reference cache)."""
    world = WorldModel.from_pretrained(teacher["folder"])
    latents, cond = window(teacher)
    noise = torch.randn(latents[:, k:].shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine = one_step_sample(world.dit, latents, noise, cond, k)
    for shift in (None, 10.0):
        theirs = sample_frames(
            world, world.dit, cond, latents[:, :k] if k else None, noise, 1, 1.0, shift=shift
        )
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


def fixed_loss(teacher, student_folder: Path) -> float:
    """Distillation loss of the model in `student_folder` over fixed windows and noise."""
    cfg = load_config(small_config(teacher["root"], "probe"), DiTTrainConfig)
    objective = Distillation(
        DistillSection(reference_probs=(0.2, 0.0, 0.0, 0.8)),
        StageTwo(cfg),
        WorldModel.from_pretrained(teacher["folder"]),
    )
    student = StageTwoModel.from_pretrained(student_folder)
    losses = []
    with torch.no_grad():
        for i in range(6):
            batch = as_batch(teacher["cache"][i % len(teacher["cache"])])
            out = objective.forward_window(student, batch, torch.Generator().manual_seed(i))
            losses.append(float(torch.mean((out["student"] - out["teacher"]) ** 2)))
    return float(np.mean(losses))


def test_distillation_brings_the_student_to_the_teacher_and_resumes(tmp_path, teacher):
    data = teacher["cache"]
    full = train_dit(distill_config(teacher, tmp_path, "full", 30), dataset=data)
    split = distill_config(teacher, tmp_path, "split", 30)
    first = train_dit(split, dataset=data, stop_at=10)
    rest = train_dit(split, resume=True, dataset=data)
    for a, b in zip(full, first + rest):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)

    final = tmp_path / "full" / "final"
    world = WorldModel.from_pretrained(final)
    source = WorldModel.from_pretrained(teacher["folder"])
    assert world.dit_distilled is not None
    for name, p in source.dit.state_dict().items():  # the teacher rides along unchanged
        assert torch.equal(p, world.dit.state_dict()[name]), name
    for name, p in source.text_encoder.state_dict().items():
        assert torch.equal(p, world.text_encoder.state_dict()[name]), name
    (tmp_path / "start").mkdir()
    StageTwoModel(source.dit, source.text_encoder).save_pretrained(tmp_path / "start")
    (tmp_path / "student").mkdir()
    StageTwoModel(world.dit_distilled, world.text_encoder).save_pretrained(tmp_path / "student")
    before, after = fixed_loss(teacher, tmp_path / "start"), fixed_loss(teacher, tmp_path / "student")
    assert after < 0.5 * before, (before, after)


def test_distill_needs_a_teacher_folder(tmp_path, teacher):
    path = distill_config(teacher, tmp_path, "noteacher", 1)
    raw = yaml.safe_load(path.read_text())
    del raw["model"]["init_from"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"model\.init_from"):
        load_config(path, DiTTrainConfig)
    path = distill_config(teacher, tmp_path, "notfolder", 1)
    raw = yaml.safe_load(path.read_text())
    raw["model"]["init_from"] = str(teacher["root"] / "cache")
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"model\.init_from"):
        train_dit(path, dataset=teacher["cache"])
    with pytest.raises(ValueError, match="sum to 1"):
        DistillSection(reference_probs=(0.5, 0.0, 0.0, 0.2))


def test_env_samples_with_the_distilled_dit_in_one_step_by_default():
    rig = DrivingEnv(sensors=False, image_height=32, image_width=64, cameras=["CAM_FRONT"]).rig
    with_student = random_world_model(micro=True, causal=True, distilled=True)
    backend = WorldModelBackend(rig, world_model=with_student)
    assert backend.dit is with_student.dit_distilled and backend.num_steps == 1
    backend = WorldModelBackend(rig, world_model=with_student, distilled=False)
    assert backend.dit is with_student.dit and backend.num_steps == 3
    backend = WorldModelBackend(rig, world_model=with_student, num_steps=4)  # more steps: the DiT itself
    assert backend.dit is with_student.dit and backend.num_steps == 4
    paper = WorldModelBackend(rig, world_model=with_student, **WorldModelOptions.paper().model_dump())
    assert paper.dit is with_student.dit and paper.num_steps == 50
    plain = random_world_model(micro=True, causal=True)
    assert WorldModelBackend(rig, world_model=plain).dit is plain.dit
    with pytest.raises(ValueError, match=r"backend_options\.distilled"):
        WorldModelBackend(rig, world_model=plain, distilled=True)


def test_world_model_folder_round_trips_its_distilled_dit(tmp_path):
    model = random_world_model(micro=True, distilled=True)
    model.save_pretrained(tmp_path / "wm")
    loaded = WorldModel.from_pretrained(tmp_path / "wm")
    for name, p in model.dit_distilled.state_dict().items():
        assert torch.equal(p, loaded.dit_distilled.state_dict()[name]), name
    assert not torch.equal(model.dit_distilled.proj_out.weight, model.dit.proj_out.weight)
