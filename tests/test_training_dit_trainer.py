"""Stage-2 trainer: latent cache, window cameras, exact loss/dropout wiring, resume, a few end-to-end steps."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cvd_sim.training.dit_trainer import (
    DiTTrainConfig,
    StageTwo,
    StageTwoModel,
    build_stage_two_model,
    train_dit,
)
from cvd_sim.training.engine import load_config, resolve_config_path
from cvd_sim.training.latent_cache import LatentCache, build_latent_cache, window_cameras

from cvd_sim.cli import UserError
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.pipelines.world_model import WorldModel
from cvd_sim.sensors.layout import layout_for_clip

sys.path.insert(0, str(Path(__file__).parent))
from test_vae_analytic_scene import AnalyticClips

TINY_DIT = {
    "num_layers": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 2,
    "joint_attention_dim": 16,
    "caption_projection_dim": 16,
    "pooled_projection_dim": 16,
    "pos_embed_max_size": 16,
    "dual_attention_layers": (),
    "layout_adapter_channels": 8,
    "layout_blocks": 1,
}
RESOLUTIONS = [(16, 32), (32, 48)]


class BoxClips(AnalyticClips):
    """Analytic clips with one car ahead (so the layout images are not empty)."""

    def __getitem__(self, index: int) -> dict:
        clip = super().__getitem__(index)
        t = clip["boxes"].shape[0]
        clip["boxes"][:] = torch.tensor([8.0, 0.0, 0.8, 4.0, 1.8, 1.6, 0.0])
        clip["box_categories"][:] = 0
        clip["box_ids"][:] = torch.arange(1).expand(t, 1)
        return clip


def tiny_vae() -> StormVAE:
    torch.manual_seed(0)
    return StormVAE.from_preset(
        "tiny",
        vae_overrides={"block_out_channels": [8, 16, 16, 16], "norm_num_groups": 4},
        width=32,
        depth=1,
        num_heads=2,
        key_upsampler_channels=[16, 8, 8],
        sky_hidden=8,
    )


def build_box_cache(root: Path) -> dict:
    """A tiny STORM-VAE saved under root and the latent cache of 2 box clips: {root, vae, clips, folder}."""
    vae = tiny_vae()
    vae.save_pretrained(root / "vae")
    clips = BoxClips(num_clips=2, num_frames=5, views=(0, 1, 2))
    folder = build_latent_cache(
        root / "vae", clips, root / "cache", RESOLUTIONS, {"name": "box"}, progress=False
    )
    return {"root": root, "vae": vae, "clips": clips, "folder": folder}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_box_cache(tmp_path_factory.mktemp("dit"))


def small_config(folder: Path, name: str, **overrides) -> Path:
    cfg = {
        "model": {"dit": TINY_DIT, "text": {"max_length": 12, "num_layers": 1, "num_heads": 2}},
        "data": {
            "num_frames": 5,
            "resolutions": [
                {"height": h, "width": w, "prob": p} for (h, w), p in zip(RESOLUTIONS, (0.5, 0.5))
            ],
        },
        "stage": {"window_frames": 4},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "run": {
            "out_dir": str(folder / name),
            "max_steps": 2,
            "checkpoint_every": 1,
            "log_every": 1,
            "image_every": 2,
            "mixed_precision": "no",
        },
    }
    for section, values in overrides.items():
        cfg[section].update(values)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------------------------- cache
def test_cache_entries_match_the_encoder_and_layout(cache):
    data = LatentCache(cache["folder"])
    assert len(data) == 2
    item, clip = data[1], cache["clips"][1]
    for h, w in RESOLUTIONS:
        key = f"{h}x{w}"
        assert item[f"latents_{key}"].shape == (5, 3, 16, h // 8, w // 8)
        images = torch.nn.functional.interpolate(clip["images"].flatten(0, 1), size=(h, w), mode="bilinear")
        if (h, w) == (16, 32):
            images = clip["images"].flatten(0, 1)
        with torch.no_grad():
            expected = cache["vae"].encode(images.reshape(1, 5, 3, 3, h, w))[0]
        torch.testing.assert_close(item[f"latents_{key}"], expected, atol=1e-5, rtol=1e-5)
        k = clip["intrinsics"].clone()
        k[..., 0, :] *= w / 32
        k[..., 1, :] *= h / 16
        torch.testing.assert_close(item[f"intrinsics_{key}"], k)
        layout = layout_for_clip(
            clip["boxes"],
            clip["box_categories"],
            clip["map_polylines"],
            clip["map_types"],
            clip["ego_to_world"],
            k,
            clip["cam_to_ego"],
            h,
            w,
        )
        assert layout.amax() > 0.5  # the car is drawn
        assert (item[f"layout_{key}"] - layout).abs().max() <= 0.5 / 255 + 1e-6
    assert item["text"] == clip["text"]


def test_cache_resumes_and_refuses_other_weights(cache):
    folder = cache["folder"]
    kept = folder / "clip_000000.npz"
    stamp = kept.stat().st_mtime_ns
    before = LatentCache(folder)[1]["latents_16x32"]
    (folder / "clip_000001.npz").unlink()
    with pytest.raises(UserError, match="cache incomplete"):
        LatentCache(folder)
    build_latent_cache(
        cache["root"] / "vae", cache["clips"], folder, RESOLUTIONS, {"name": "box"}, progress=False
    )
    assert kept.stat().st_mtime_ns == stamp  # not recomputed
    torch.testing.assert_close(LatentCache(folder)[1]["latents_16x32"], before)
    with pytest.raises(UserError, match="different data"):
        build_latent_cache(
            cache["root"] / "vae", cache["clips"], folder, RESOLUTIONS, {"name": "x"}, progress=False
        )


def test_window_cameras_are_relative_to_the_window_start():
    g = torch.Generator().manual_seed(1)
    ego_to_world = torch.eye(4).repeat(1, 5, 1, 1)
    yaw = torch.rand(5, generator=g)
    ego_to_world[0, :, 0, 0], ego_to_world[0, :, 0, 1] = yaw.cos(), -yaw.sin()
    ego_to_world[0, :, 1, 0], ego_to_world[0, :, 1, 1] = yaw.sin(), yaw.cos()
    ego_to_world[0, :, :3, 3] = torch.rand(5, 3, generator=g) * 20
    cam_to_ego = torch.eye(4).repeat(1, 5, 2, 1, 1)
    cam_to_ego[..., :3, 3] = torch.rand(1, 5, 2, 3, generator=g)
    k = torch.eye(3).repeat(1, 5, 2, 1, 1)
    _, cam_to_ref = window_cameras(k, cam_to_ego, ego_to_world, 2, 5)
    e = ego_to_world[0].double().numpy()
    for t in range(3):
        for v in range(2):
            ref = np.linalg.inv(e[2]) @ e[2 + t] @ cam_to_ego[0, 2 + t, v].double().numpy()
            np.testing.assert_allclose(cam_to_ref[0, t, v].numpy(), ref, atol=1e-5)
    torch.testing.assert_close(cam_to_ref[0, 0], cam_to_ego[0, 2])


# ---------------------------------------------------------------------------------------------- wiring
class Recorder(torch.nn.Module):
    """Wraps the DiT and keeps the arguments of its last call."""

    def __init__(self, dit):
        super().__init__()
        self.inner, self.calls = dit, []

    def forward(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.inner(*args, **kwargs)


def wired(tmp_path, **flow) -> tuple[StageTwo, StageTwoModel, Recorder]:
    cfg = load_config(
        small_config(tmp_path, "wire", stage={"window_frames": 4, "flow": flow}), DiTTrainConfig
    )
    torch.manual_seed(0)
    model = build_stage_two_model(cfg.model)
    recorder = Recorder(model.dit)
    model.dit = recorder
    return StageTwo(cfg), model, recorder


def batch_of(cache, index=0):
    item = LatentCache(cache["folder"])[index]
    return {k: (v[None] if torch.is_tensor(v) else [v]) for k, v in item.items()}


def test_references_are_clean_at_t0_and_out_of_the_loss(tmp_path, cache):
    objective, model, rec = wired(tmp_path, reference_probs=[0, 0, 0, 1])
    batch = batch_of(cache)
    loss, info = objective.forward_window(model, batch, torch.Generator().manual_seed(3))
    (x_t, timesteps), _ = rec.calls[-1]
    start, stop = info["window"]
    latents = batch[f"latents_{info['resolution']}"][:, start:stop]
    assert torch.equal(x_t[:, :3], latents[:, :3])  # clean references
    assert torch.all(timesteps[:, :3] == 0) and torch.all(timesteps[:, 3:] > 0)
    torch.testing.assert_close(timesteps, info["sigmas"] * 1000)
    pred, target = info["pred"], info["target"]
    # independent loss: mean squared error over the generated frame only
    expected = (pred[:, 3:] - target[:, 3:]).square().mean()
    torch.testing.assert_close(loss, expected)
    # the velocity target is noise - x0 with x_t = (1 - s) x0 + s noise on the generated frame
    s = info["sigmas"][:, 3:, :, None, None, None]
    noise = (x_t[:, 3:] - (1 - s) * latents[:, 3:]) / s
    torch.testing.assert_close(target[:, 3:], noise - latents[:, 3:], atol=1e-4, rtol=1e-4)


def test_condition_dropout_and_block_switches_reach_the_dit(tmp_path, cache):
    batch = batch_of(cache)
    gen = torch.Generator().manual_seed(5)
    objective, model, rec = wired(
        tmp_path,
        keep_text=0,
        keep_boxes=0,
        keep_map=1,
        keep_camera=0,
        disable_temporal=1,
        disable_crossview=0,
    )
    _, info = objective.forward_window(model, batch, gen)
    _, kw = rec.calls[-1]
    null_hidden, null_pooled = model.text_encoder.encode([""])
    torch.testing.assert_close(kw["encoder_hidden_states"], null_hidden)
    torch.testing.assert_close(kw["pooled_projections"], null_pooled)
    start, stop = info["window"]
    cached = batch[f"layout_{info['resolution']}"][:, start:stop]
    assert cached[:, :, :, :3].amax() > 0
    assert torch.all(kw["layout"][:, :, :, :3] == 0)
    torch.testing.assert_close(kw["layout"][:, :, :, 3:], cached[:, :, :, 3:])
    assert torch.all(kw["camera_mask"] == 0)
    assert not kw["temporal_enabled"].any() and kw["crossview_enabled"].all()

    objective, model, rec = wired(
        tmp_path,
        keep_text=1,
        keep_boxes=1,
        keep_map=1,
        keep_camera=1,
        disable_temporal=0,
        disable_crossview=1,
    )
    _, info = objective.forward_window(model, batch, gen)
    _, kw = rec.calls[-1]
    hidden, _ = model.text_encoder.encode(batch["text"])
    torch.testing.assert_close(kw["encoder_hidden_states"], hidden)
    start, stop = info["window"]
    torch.testing.assert_close(kw["layout"], batch[f"layout_{info['resolution']}"][:, start:stop])
    k, c2r = window_cameras(
        batch[f"intrinsics_{info['resolution']}"], batch["cam_to_ego"], batch["ego_to_world"], start, stop
    )
    torch.testing.assert_close(kw["cam_to_ref"], c2r)
    torch.testing.assert_close(kw["intrinsics"], k)
    assert torch.all(kw["camera_mask"] == 1)
    assert kw["temporal_enabled"].all() and not kw["crossview_enabled"].any()


def test_resolutions_follow_their_probabilities(tmp_path):
    cfg = load_config(small_config(tmp_path, "res"), DiTTrainConfig)
    cfg.data.resolutions[0].prob, cfg.data.resolutions[1].prob = 0.2, 0.8
    objective = StageTwo(cfg)
    gen = torch.Generator().manual_seed(0)
    picks = [objective.pick_window(5, gen) for _ in range(2000)]
    share = sum(key == "16x32" for key, _, _ in picks) / len(picks)
    assert abs(share - 0.2) < 0.03
    assert {start for _, start, _ in picks} == {0, 1} and all(b - a == 4 for _, a, b in picks)


# ---------------------------------------------------------------------------------------------- runs
def test_resume_after_a_kill_matches_and_final_folder_samples(tmp_path, cache):
    data = LatentCache(cache["folder"])
    full = train_dit(small_config(tmp_path, "full"), dataset=data, storm_vae=cache["vae"])
    split = small_config(tmp_path, "split")
    first = train_dit(split, dataset=data, stop_at=1, storm_vae=cache["vae"])
    # a run killed after writing step 2's checkpoint directory but before `latest` moved: a stale temp folder
    os.makedirs(tmp_path / "split" / "checkpoints" / ".step_00000002.tmp")
    rest = train_dit(split, resume=True, dataset=data, storm_vae=cache["vae"])
    assert [r["step"] for r in full] == [1, 2] and [r["step"] for r in first + rest] == [1, 2]
    for a, b in zip(full, first + rest):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
        assert np.isfinite(a["loss"])
    for name, p in StageTwoModel.from_pretrained(tmp_path / "full" / "final").state_dict().items():
        q = StageTwoModel.from_pretrained(tmp_path / "split" / "final").state_dict()[name]
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)

    world = WorldModel.from_pretrained(tmp_path / "split" / "final")
    from cvd_sim.pipelines.world_conditions import WorldConditions

    item = data[0]
    cond = WorldConditions(
        prompt=item["text"],
        intrinsics=item["intrinsics_16x32"][None, :4],
        cam_to_ego=item["cam_to_ego"][None, :4],
        ego_to_world=item["ego_to_world"][None, :4],
        height=16,
        width=32,
        layout=item["layout_16x32"][None, :4],
    )
    out = world.generate(cond, item["latents_16x32"][None, :1], num_steps=2, guidance_scale=2.0)
    assert out.shape == (1, 4, 3, 16, 2, 4) and torch.isfinite(out).all()
    assert torch.equal(out[:, :1], item["latents_16x32"][None, :1])


def test_shipped_presets_validate_and_errors_name_the_field(tmp_path):
    tiny = load_config(resolve_config_path("tiny", "dit"), DiTTrainConfig)
    assert [r.prob for r in tiny.data.resolutions] == [0.1, 0.3, 0.6]
    probs = tiny.stage.flow.reference_probs
    assert probs[0] == pytest.approx(0.2)
    assert [p / (1 - probs[0]) for p in probs[1:]] == pytest.approx([0.1, 0.3, 0.6])
    full = load_config(resolve_config_path("full", "dit"), DiTTrainConfig)
    assert full.model.preset == "full" and full.stage.window_frames == 19
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"run": {"out_dir": "x", "max_steps": 1}, "stage": {"window_frames": 30}}))
    with pytest.raises(UserError, match=f"{bad}.*window_frames"):
        load_config(bad, DiTTrainConfig)
    odd = tmp_path / "odd.yaml"
    odd.write_text(
        yaml.safe_dump(
            {
                "run": {"out_dir": "x", "max_steps": 1},
                "data": {"resolutions": [{"height": 40, "width": 64, "prob": 1}]},
            }
        )
    )
    with pytest.raises(UserError, match=r"data\.resolutions\.0\.height"):
        load_config(odd, DiTTrainConfig)
    nodata = tmp_path / "nodata.yaml"
    nodata.write_text(yaml.safe_dump({"run": {"out_dir": str(tmp_path / "r"), "max_steps": 1}}))
    with pytest.raises(UserError, match=r"model\.storm_vae"):
        train_dit(nodata)


@pytest.mark.slow
def test_resume_after_sigkill_matches(tmp_path, cache):
    """A real kill (SIGKILL mid-run, after some checkpoint) and `--resume` reproduce the uninterrupted losses."""
    import json
    import signal
    import subprocess
    import time

    steps = {"max_steps": 6}
    full = train_dit(small_config(tmp_path, "full", run=steps), dataset=LatentCache(cache["folder"]))
    killed = small_config(tmp_path, "killed", run=steps)
    script = (
        "import sys; from cvd_sim.training.dit_trainer import train_dit; "
        "from cvd_sim.training.latent_cache import LatentCache; "
        f"train_dit(sys.argv[1], resume=True, dataset=LatentCache({str(cache['folder'])!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(killed)])
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    while proc.poll() is None and not (latest.is_file() and latest.read_text().strip() >= "step_00000002"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    train_dit(killed, resume=True, dataset=LatentCache(cache["folder"]))
    logged = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, 7))
    for a, b in zip(full, logged):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
