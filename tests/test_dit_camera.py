"""Camera condition: poses relative to the first frame's ego, Fourier features, rays at token centres, layout adapter."""

from __future__ import annotations

import math

import numpy as np
import torch

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import pose_from_xyz_yaw
from cvd_sim.models.camera_embedding import CameraRayEmbedding, camera_to_first_ego, fourier_features
from cvd_sim.models.layout_adapter import LayoutAdapter


def test_camera_to_first_ego_matches_numpy_and_is_world_invariant():
    rig = CameraRig.nuscenes().resized(64, 112)
    ego_to_world = pose_from_xyz_yaw([10.0, 12.0, 15.0], [5.0, 5.5, 6.5], [0.0, 0.0, 0.1], [0.3, 0.35, 0.5])
    cam_to_ego = np.broadcast_to(rig.cam_to_ego, (3, 6, 4, 4))
    got = camera_to_first_ego(torch.tensor(cam_to_ego)[None], torch.tensor(ego_to_world)[None])[0].numpy()
    for t in range(3):
        for v in range(6):
            expected = np.linalg.inv(ego_to_world[0]) @ ego_to_world[t] @ cam_to_ego[t, v]
            np.testing.assert_allclose(got[t, v], expected, atol=1e-9)
    np.testing.assert_allclose(got[0], rig.cam_to_ego, atol=1e-9)
    # Moving the whole world leaves the relative cameras unchanged.
    world_shift = pose_from_xyz_yaw(-300.0, 40.0, 2.0, 1.2)
    moved = camera_to_first_ego(
        torch.tensor(cam_to_ego)[None], torch.tensor(world_shift @ ego_to_world)[None]
    )
    np.testing.assert_allclose(moved[0].numpy(), got, atol=1e-9)


def test_fourier_features_values():
    x = torch.tensor([[0.25, -0.5, 1.0]])
    feats = fourier_features(x, 2)
    assert feats.shape == (1, 12)
    angles = [math.pi * f * c for c in (0.25, -0.5, 1.0) for f in (1, 2)]
    expected = [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
    torch.testing.assert_close(feats[0], torch.tensor(expected), rtol=0, atol=1e-6)


def test_rays_go_through_token_centres():
    """The embedding's input features equal brute-force rays through each token's centre pixel."""
    torch.manual_seed(0)
    emb = CameraRayEmbedding(dim=96, origin_octaves=8, direction_octaves=4, origin_scale=50.0)
    k = torch.tensor([[70.0, 0.0, 55.0], [0.0, 72.0, 30.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    pose = torch.tensor(pose_from_xyz_yaw(3.0, -1.0, 1.5, 0.4))
    captured = {}

    def keep_input(module, inputs, output):
        captured["feats"] = inputs[0]

    emb.proj.register_forward_hook(keep_input)
    out = emb(k, pose, image_hw=(64, 112), token_hw=(4, 7))
    assert out.shape == (28, 96)
    feats = captured["feats"]
    for i in range(4):
        for j in range(7):
            pixel = np.array([(j + 0.5) * 16, (i + 0.5) * 16, 1.0])
            direction = pose[:3, :3].numpy() @ (np.linalg.inv(k.numpy()) @ pixel)
            direction /= np.linalg.norm(direction)
            origin = pose[:3, 3].numpy() / 50.0
            expected = torch.cat(
                [
                    fourier_features(torch.tensor(origin, dtype=torch.float32), 8),
                    fourier_features(torch.tensor(direction, dtype=torch.float32), 4),
                ]
            )
            torch.testing.assert_close(feats[i * 7 + j], expected, rtol=0, atol=1e-4)


def test_layout_adapter_shapes_and_zero_init():
    torch.manual_seed(0)
    adapter = LayoutAdapter(
        dim=32, num_outputs=3, channels=16, num_res_blocks=1, latent_downscale=8, patch_size=2
    )
    layout = torch.rand(5, 6, 64, 112)
    outputs = adapter(layout)
    assert len(outputs) == 3 and all(o.shape == (5, 28, 32) for o in outputs)
    assert all(o.abs().max() == 0 for o in outputs)
    torch.nn.init.normal_(adapter.outputs[1].weight)
    # The adapter is convolutional and local: a change in the bottom-right patch never reaches the first token row.
    changed = layout.clone()
    changed[:, :, 48:, 96:] += 1.0  # token (3, 6)
    a, b = adapter(layout)[1], adapter(changed)[1]
    assert (a[:, 27] - b[:, 27]).abs().max() > 1e-4
    torch.testing.assert_close(a[:, :7], b[:, :7])  # first token row is far from the change
