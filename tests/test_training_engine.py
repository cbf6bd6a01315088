"""Training engine: configs, schedule, data order, exact resume, checkpoint integrity, the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from cvd_sim.training.dit_trainer import DiTTrainConfig
from cvd_sim.training.engine import StepSampler, cosine_with_warmup, load_config, resolve_config_path
from cvd_sim.training.vae_trainer import VaeTrainConfig, build_dataset, build_model, train_vae

from cvd_sim.cli import UserError, main
from cvd_sim.data.synthdrive import SynthConfig, synthesize
from cvd_sim.models.clip_data import open_clips
from cvd_sim.models.storm_vae import StormVAE

sys.path.insert(0, str(Path(__file__).parent))
from test_vae_analytic_scene import AnalyticClips

SMALL_RUN = {
    "model": {
        "preset": "tiny",
        "vae": {"block_out_channels": [8, 16, 16, 16], "norm_num_groups": 4},
        "decoder": {
            "width": 32,
            "depth": 1,
            "num_heads": 2,
            "key_upsampler_channels": [16, 8, 8],
            "sky_hidden": 8,
        },
    },
    "data": {"height": 16, "width": 32, "num_frames": 7},
    "stage": {
        "context_frames": [0, 2, 4, 6],
        "num_targets": 2,
        "render_views_per_target": 1,
        "vae_decode_images": 2,
    },
    "optim": {"lr": 1.0e-3, "warmup_steps": 1},
    "run": {"max_steps": 3, "checkpoint_every": 1, "log_every": 1, "image_every": 2, "mixed_precision": "no"},
}


def write_config(folder: Path, name: str, **run) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(SMALL_RUN))
    cfg["run"].update(out_dir=str(folder / name), **run)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_shipped_presets_validate():
    for preset in ("tiny", "full"):
        cfg = load_config(resolve_config_path(preset, "vae"), VaeTrainConfig)
        assert cfg.model.preset == preset
        assert cfg.stage.context_frames == [0, 6, 12, 18] and cfg.stage.num_targets == 3
        assert cfg.loss.storm == 0.5
    plain = load_config(resolve_config_path("tiny_plain", "vae"), VaeTrainConfig)
    assert plain.loss.storm == 0.0 and plain.stage.vae_decode_images == 6 * len(plain.stage.context_frames)
    assert load_config(resolve_config_path("full", "vae"), VaeTrainConfig).model.gradient_checkpointing
    # the continuation resumes the tiny run in place with only a longer schedule
    tiny = load_config(resolve_config_path("tiny", "vae"), VaeTrainConfig)
    more = load_config(resolve_config_path("tiny_continue", "vae"), VaeTrainConfig)
    assert more.run.out_dir == tiny.run.out_dir and more.run.max_steps > tiny.run.max_steps
    assert more.model_dump(exclude={"run"}) == tiny.model_dump(exclude={"run"})
    assert more.run.model_dump(exclude={"max_steps"}) == tiny.run.model_dump(exclude={"max_steps"})
    # stage 1b trains the decoders of the continued model with its encoder frozen
    dec = load_config(resolve_config_path("tiny_decoders", "vae"), VaeTrainConfig)
    assert dec.model.freeze == ["encoder"] and dec.model.init_from == Path(tiny.run.out_dir) / "final"
    assert dec.run.out_dir != tiny.run.out_dir and dec.loss == more.loss and dec.stage == more.stage


PART_PREFIX = {
    "encoder": "vae.encoder.",
    "vae_decoder": "vae.decoder.",
    "gaussian_decoder": "gaussian_decoder.",
}


@pytest.mark.parametrize(
    "freeze", [["encoder"], ["encoder", "gaussian_decoder"], ["encoder", "vae_decoder"]], ids="+".join
)
def test_frozen_parts_stay_put_while_the_rest_trains(tmp_path, freeze):
    path = write_config(tmp_path, "frozen", max_steps=2)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["freeze"] = freeze
    path.write_text(yaml.safe_dump(cfg))
    history = train_vae(path, dataset=AnalyticClips(num_clips=2))
    # a frozen decoder's branch is not run: no L_VAE reconstruction, or no L_STORM
    assert ("loss_vae_recon" in history[0]) == ("vae_decoder" not in freeze)
    assert ("loss_storm" in history[0]) == ("gaussian_decoder" not in freeze)
    torch.manual_seed(0)  # train_vae seeds the initial weights with run.seed (0)
    start = build_model(load_config(path, VaeTrainConfig).model)
    trained = StormVAE.from_pretrained(tmp_path / "frozen" / "final")
    frozen_prefixes = tuple(PART_PREFIX[part] for part in freeze)
    for name, value in start.state_dict().items():
        if name.startswith("vae.") and not name.startswith(("vae.encoder.", "vae.decoder.")):
            continue  # AutoencoderKL's own (unused) quant convs, absent in the SD3.5 layout
        same = torch.equal(value, trained.state_dict()[name])
        assert same == name.startswith(frozen_prefixes), name


@pytest.mark.parametrize(
    ("model", "loss"),
    [({"freeze": ["vae_decoder", "gaussian_decoder"]}, {}), ({"freeze": ["vae_decoder"]}, {"storm": 0.0})],
)
def test_freezing_everything_trainable_is_refused(tmp_path, model, loss):
    path = tmp_path / "nothing.yaml"
    path.write_text(yaml.safe_dump({"model": model, "loss": loss, "run": {"out_dir": "x", "max_steps": 2}}))
    with pytest.raises(UserError, match="nothing to train"):
        load_config(path, VaeTrainConfig)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"optim": {"lr": -1.0}}, "optim.lr"),
        ({"run": {"out_dir": "x", "max_steps": 2, "bogus": 1}}, "run.bogus"),
        ({"stage": {"context_frames": [0, 30]}}, "(root)|stage"),
        ({"loss": {"depth_kind": "l7"}}, "loss.depth_kind"),
        ({"run": {"out_dir": "x", "max_steps": 2, "mixed_precision": "no", "cpu_bf16": True}}, "run"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path, patch, field):
    cfg = {"run": {"out_dir": "x", "max_steps": 2}, **patch}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError) as err:
        load_config(path, VaeTrainConfig)
    message = str(err.value)
    assert message.startswith(str(path))
    assert any(f in message for f in field.split("|"))


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="presets: full, tiny"):
        resolve_config_path("huge", "vae")
    bad = tmp_path / "broken.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_config(bad, VaeTrainConfig)


def test_base_config_merges_mappings_and_replaces_the_rest(tmp_path):
    parent = write_config(tmp_path, "parent")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text(
        "base: ../parent.yaml\nstage:\n  context_frames: [0, 6]\nrun:\n  out_dir: elsewhere\n  max_steps: 9\n"
    )
    got = load_config(child, VaeTrainConfig)
    want = yaml.safe_load(parent.read_text())
    want["stage"]["context_frames"] = [0, 6]  # a list replaces, never concatenates
    want["run"].update(out_dir="elsewhere", max_steps=9)
    assert got == VaeTrainConfig.model_validate(want)
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("base: sub/child.yaml\noptim:\n  lr: 0.5\n")
    chained = load_config(grandchild, VaeTrainConfig)
    assert chained.optim.lr == 0.5 and chained.run.max_steps == 9 and chained.model == got.model


@pytest.mark.parametrize(
    ("text", "message", "named"),
    [
        ("base: missing.yaml\n", "base: .*missing.yaml not found", "top.yaml"),
        ("base: other.yaml\n", "base: top.yaml leads back to itself", "other.yaml"),  # other -> top -> other
        ("base: [a.yaml]\n", "base: must be the path", "top.yaml"),
        ("base: ok.yaml\noptim:\n  lr: -1\n", "optim.lr", "top.yaml"),
    ],
)
def test_base_config_errors_name_the_file(tmp_path, text, message, named):
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump({"run": {"out_dir": "x", "max_steps": 2}}))
    (tmp_path / "other.yaml").write_text("base: top.yaml\n")
    path = tmp_path / "top.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        load_config(path, VaeTrainConfig)
    assert str(err.value).startswith(str(tmp_path / named))


def test_cosine_schedule_with_warmup():
    assert cosine_with_warmup(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert cosine_with_warmup(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(60, 10, 110, 0.1) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert cosine_with_warmup(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert cosine_with_warmup(500, 10, 110, 0.1) == pytest.approx(0.1)


def test_step_sampler_partitions_ranks_and_resumes():
    length, bs, world = 7, 2, 2
    ranks = [list(StepSampler(length, bs, world, r, seed=3, start=0, stop=7)) for r in range(world)]
    global_order = [
        i for step in range(7) for r in range(world) for i in ranks[r][step * bs : (step + 1) * bs]
    ]
    # every epoch (7 consecutive global samples) is a permutation of the dataset
    assert sorted(global_order[:7]) == list(range(7)) and sorted(global_order[7:14]) == list(range(7))
    assert global_order[:7] != global_order[7:14]
    resumed = list(StepSampler(length, bs, world, 1, seed=3, start=4, stop=7))
    assert resumed == ranks[1][4 * bs :]


def test_resume_matches_uninterrupted_run(tmp_path):
    data = AnalyticClips(num_clips=3)
    full = train_vae(write_config(tmp_path, "full", max_steps=2), dataset=data)
    assert [r["step"] for r in full] == [1, 2]
    split = write_config(tmp_path, "split", max_steps=2)
    first = train_vae(split, dataset=data, stop_at=1)
    assert [r["step"] for r in first] == [1]
    rest = train_vae(split, resume=True, dataset=data)
    assert [r["step"] for r in rest] == [2]
    for a, b in zip(full, first + rest):
        assert abs(a["loss"] - b["loss"]) <= 1e-6, (a, b)
    assert [r["lr"] for r in full] == pytest.approx([1e-3 * cosine_with_warmup(s, 1, 2, 0.1) for s in (1, 2)])
    assert all(torch.isfinite(torch.tensor(r["grad_norm"])) for r in full)
    # the log of the split run reads like one run, and its final model equals the uninterrupted one
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    ckpts = sorted(p.name for p in (tmp_path / "split" / "checkpoints").glob("step_*"))
    assert ckpts == ["step_00000001", "step_00000002"]  # keep_checkpoints = 2, no temporary folders left
    assert not list((tmp_path / "split" / "checkpoints").glob(".*tmp"))
    assert (tmp_path / "split" / "final" / "gaussian_decoder" / "config.json").is_file()
    assert list((tmp_path / "split" / "tensorboard").glob("events.out.tfevents.*"))


def test_cpu_bf16_autocasts_the_training_step(tmp_path):
    from accelerate.state import AcceleratorState

    data = AnalyticClips(num_clips=2)
    fp32 = train_vae(write_config(tmp_path, "fp32", max_steps=2), dataset=data)
    AcceleratorState._reset_state()  # one process holds one precision; a new run in this process sets its own
    try:
        bf16 = train_vae(
            write_config(tmp_path, "bf16", max_steps=2, mixed_precision="bf16", cpu_bf16=True), dataset=data
        )
    finally:
        AcceleratorState._reset_state()
    for a, b in zip(fp32, bf16):
        # bf16 keeps 8 mantissa bits: the same step to about a percent, but not the fp32 numbers
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
        assert abs(b["loss"] - a["loss"]) > 1e-6
    # the weights stay fp32 (autocast only); the saved model loads and holds fp32 tensors
    model = StormVAE.from_pretrained(tmp_path / "bf16" / "final")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path, capsys):
    data = AnalyticClips(num_clips=1)
    path = write_config(tmp_path, "run", max_steps=2)
    train_vae(path, dataset=data, stop_at=1)
    weights = (
        tmp_path
        / "run"
        / "checkpoints"
        / "step_00000001"
        / "model"
        / "vae"
        / "diffusion_pytorch_model.safetensors"
    )
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(UserError, match=r"corrupted \(checksum mismatch\)"):
        train_vae(path, dataset=data, resume=True)
    (weights.parent.parent.parent / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="manifest missing or unreadable"):
        train_vae(path, dataset=data, resume=True)


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"run": {"out_dir": "x", "max_steps": 0}}))
    assert main(["train", "vae", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run.max_steps" in err and str(bad) in err
    no_data = tmp_path / "nodata.yaml"
    no_data.write_text(
        yaml.safe_dump({"data": {"root": str(tmp_path / "missing")}, "run": {"out_dir": "x", "max_steps": 1}})
    )
    assert main(["train", "vae", "--config", str(no_data)]) == 2
    assert "data.root" in capsys.readouterr().err


def test_several_data_roots_read_as_one_dataset_in_order(tmp_path):
    roots = []
    for seed in (0, 1):
        root = tmp_path / f"synth{seed}"
        synthesize(
            SynthConfig(scenes=1, frames=3, height=48, width=80, seed=seed, lidar_azimuth_steps=360),
            root,
            workers=1,
            progress=False,
        )
        roots.append(root)
    path = tmp_path / "two.yaml"
    rest = {"stage": {"context_frames": [0], "num_targets": 1}, "run": {"out_dir": "x", "max_steps": 1}}
    data = {"root": [str(r) for r in roots], "split": "all", "num_frames": 3, "height": 48, "width": 80}
    path.write_text(yaml.safe_dump({"data": data, **rest}))
    cfg = load_config(path, VaeTrainConfig)
    both = build_dataset(cfg.data, path)
    parts = [open_clips(r, "v1.0-trainval", "all", 3, 48, 80) for r in roots]
    assert len(both) == len(parts[0]) + len(parts[1]) == 2
    for got, want in zip((both[0], both[1]), (parts[0][0], parts[1][0])):
        assert torch.equal(got["images"], want["images"])
    assert not torch.equal(both[0]["images"], both[1]["images"])

    gone = {"data": {**data, "root": [str(roots[0]), str(tmp_path / "gone")]}, **rest}
    path.write_text(yaml.safe_dump(gone))
    with pytest.raises(UserError, match=r"two\.yaml: data\.root: folder .*gone does not exist"):
        build_dataset(load_config(path, VaeTrainConfig).data, path)


CONFIG_DIR = Path(__file__).parents[1] / "training" / "configs"


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
    schema = {"vae": VaeTrainConfig, "dit": DiTTrainConfig}[path.stem.split("_")[0]]
    cfg = load_config(path, schema)
    assert cfg.run.max_steps > 0 and cfg.run.out_dir.parts[0] == "runs"
