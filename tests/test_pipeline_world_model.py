"""WorldModel pipeline: one-window sampling with references and CFG, autoregressive rollout, folder I/O."""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from test_dit_model import micro_dit

import cvd_sim
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import pose_from_xyz_yaw
from cvd_sim.models.camera_embedding import camera_to_first_ego
from cvd_sim.models.storm_vae import StormVAE
from cvd_sim.models.text_encoder import ByteTextEncoder
from cvd_sim.pipelines import WorldConditions, WorldModel

H, W = 64, 112


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    torch.manual_seed(0)
    text_encoder = ByteTextEncoder(max_length=16, width=32, num_layers=1, num_heads=2, pooled_dim=32)
    return WorldModel(
        StormVAE.from_preset("tiny"), micro_dit(0), text_encoder, FlowMatchEulerDiscreteScheduler()
    )


def make_conditions(t: int, v: int = 3, b: int = 1) -> WorldConditions:
    rig = CameraRig.nuscenes().resized(H, W)
    ego_to_world = torch.tensor(
        pose_from_xyz_yaw(torch.arange(t) * 2.0 + 100.0, 50.0, 0.0, 0.2), dtype=torch.float32
    )
    g = torch.Generator().manual_seed(t)
    return WorldConditions(
        prompt="a sunny road",
        intrinsics=torch.tensor(rig.intrinsics[:v], dtype=torch.float32).expand(b, t, v, 3, 3),
        cam_to_ego=torch.tensor(rig.cam_to_ego[:v], dtype=torch.float32).expand(b, t, v, 4, 4),
        ego_to_world=ego_to_world.expand(b, t, 4, 4),
        height=H,
        width=W,
        layout=torch.rand(b, t, v, 6, H, W, generator=g),
    )


def test_generate_keeps_references_and_is_seeded(world_model):
    cond = make_conditions(4)
    refs = torch.randn(1, 2, 3, 16, 8, 14, generator=torch.Generator().manual_seed(1))
    a = world_model.generate(
        cond, refs, num_steps=3, guidance_scale=2.0, generator=torch.Generator().manual_seed(2)
    )
    b = world_model.generate(
        cond, refs, num_steps=3, guidance_scale=2.0, generator=torch.Generator().manual_seed(2)
    )
    assert a.shape == (1, 4, 3, 16, 8, 14)
    assert torch.equal(a[:, :2], refs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="nothing to generate"):
        world_model.generate(cond, torch.zeros(1, 4, 3, 16, 8, 14), num_steps=1)


def test_one_euler_step_with_guidance_matches_manual(world_model):
    """With 1 step (sigma 1 -> 0), the result is noise - v_cfg, v_cfg = v_u + g (v_c - v_u)."""
    cond = make_conditions(3)
    refs = torch.randn(1, 1, 3, 16, 8, 14, generator=torch.Generator().manual_seed(3))
    out = world_model.generate(
        cond, refs, num_steps=1, guidance_scale=3.0, generator=torch.Generator().manual_seed(4)
    )

    x = torch.randn(1, 3, 3, 16, 8, 14, generator=torch.Generator().manual_seed(4))
    x[:, :1] = refs
    timesteps = torch.full((1, 3, 3), 1000.0)
    timesteps[:, :1] = 0.0
    dit, te = world_model.dit, world_model.text_encoder
    cam_to_ref = camera_to_first_ego(cond.cam_to_ego, cond.ego_to_world)
    with torch.no_grad():
        hidden, pooled = te.encode(["a sunny road"])
        null_hidden, null_pooled = te.encode([""])
        v_c = dit(x, timesteps, hidden, pooled, cond.layout, cond.intrinsics, cam_to_ref).sample
        v_u = dit(
            x, timesteps, null_hidden, null_pooled, torch.zeros_like(cond.layout), cond.intrinsics, cam_to_ref
        ).sample
    expected = x - (v_u + 3.0 * (v_c - v_u))
    torch.testing.assert_close(out[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4)
    assert torch.equal(out[:, :1], refs)


def test_rollout_windows_and_references(world_model, monkeypatch):
    cond = make_conditions(9)
    calls = []
    original = WorldModel.generate

    def recording_generate(self, conditions, reference_latents, *args, frames=None, **kwargs):
        out = original(self, conditions, reference_latents, *args, frames=frames, **kwargs)
        calls.append((frames, None if reference_latents is None else reference_latents.clone(), out.clone()))
        return out

    monkeypatch.setattr(WorldModel, "generate", recording_generate)
    out = world_model.rollout(
        cond, None, window=4, num_references=3, num_steps=1, guidance_scale=1.0, progress=False
    )
    assert out.shape == (1, 9, 3, 16, 8, 14)
    assert [frames for frames, _, _ in calls] == [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 9)]
    assert calls[0][1] is None
    for frames, refs, window_out in calls[1:]:
        start = frames[0]
        # The last 3 latents generated so far are the references, without re-encoding.
        assert torch.equal(refs, out[:, start : start + 3])
        assert torch.equal(window_out, out[:, start : frames[1]])


def test_window_cameras_are_relative_to_the_window_start():
    cond = make_conditions(5)
    window = cond.window(2, 5)
    assert window["cam_to_ref"].shape == (1, 3, 3, 4, 4)
    torch.testing.assert_close(window["cam_to_ref"][:, 0], cond.cam_to_ego[:, 2], rtol=0, atol=1e-5)
    # Frame 3 sits 2 m further along the ego's heading of frame 2.
    shift = window["cam_to_ref"][0, 1, 0, :3, 3] - window["cam_to_ref"][0, 0, 0, :3, 3]
    torch.testing.assert_close(
        shift,
        torch.tensor([2.0 * torch.cos(torch.tensor(0.2)), -2.0 * torch.sin(torch.tensor(0.2)), 0.0]),
        rtol=0,
        atol=1e-4,
    )


def test_conditions_are_validated():
    cond = make_conditions(2)
    with pytest.raises(ValueError, match="ego_to_world"):
        WorldConditions("x", cond.intrinsics, cond.cam_to_ego, cond.ego_to_world[:, :1], H, W)
    with pytest.raises(ValueError, match="layout"):
        WorldConditions(
            "x", cond.intrinsics, cond.cam_to_ego, cond.ego_to_world, H, W, layout=cond.layout[..., :32]
        )


def test_save_load_decode_reconstruct(tmp_path, world_model):
    world_model.save_pretrained(tmp_path / "wm")
    assert sorted(p.name for p in (tmp_path / "wm").iterdir()) == [
        "dit",
        "gaussian_decoder",
        "scheduler",
        "text_encoder",
        "vae",
    ]
    loaded = cvd_sim.WorldModel.from_pretrained(tmp_path / "wm")
    assert cvd_sim.WorldModel is WorldModel
    cond = make_conditions(2)
    a = world_model.generate(
        cond, None, num_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(5)
    )
    b = loaded.generate(
        cond, None, num_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(a, b, rtol=0, atol=0)

    latents = a[:, :1, :2]
    images = loaded.decode(latents)
    assert images.shape == (1, 1, 2, 3, H, W) and images.abs().max() <= 1.0
    torch.testing.assert_close(images, world_model.storm_vae.decode(latents), rtol=0, atol=0)

    cam_to_ref = camera_to_first_ego(cond.cam_to_ego, cond.ego_to_world)[:, :1, :2]
    args = (
        cond.intrinsics[:, :1, :2],
        cam_to_ref,
        torch.zeros(1, 1),
        cond.intrinsics[:, :1, :1],
        cam_to_ref[:, :, :1],
        torch.zeros(1, 1),
        H,
        W,
    )
    render = loaded.reconstruct(latents, *args)
    assert render["rgb"].shape == (1, 1, 1, 3, H, W) and render["depth"].shape == (1, 1, 1, 1, H, W)
    with torch.no_grad():
        torch.testing.assert_close(
            render["depth"], world_model.storm_vae.reconstruct(latents, *args)["depth"]
        )


def test_missing_parts_error(tmp_path):
    (tmp_path / "dit").mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        WorldModel.from_pretrained(tmp_path)
