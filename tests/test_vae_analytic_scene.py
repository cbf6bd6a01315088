"""An analytic driving clip (checkered ground plane + sky, ego driving straight) for the STORM-VAE tests.

Other test files import `AnalyticClips` from here; the tests below check the scene itself against a
hand-written pinhole projection, independent of cvd_sim.geometry.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from cvd_sim.geometry.camera import CameraRig

SKY_RGB = np.array([0.35, 0.55, 0.9])


def _render(k: np.ndarray, cam_to_world: np.ndarray, height: int, width: int, phase: float):
    """Ray-cast ground z=0 (checkerboard, 2 m squares) and sky. -> rgb [H, W, 3] in [0,1], depth [H, W], sky [H, W]."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    dirs = pix @ np.linalg.inv(k).T @ cam_to_world[:3, :3].T  # camera z = 1
    origin = cam_to_world[:3, 3]
    with np.errstate(divide="ignore"):
        t = np.where(dirs[..., 2] < -1e-6, -origin[2] / dirs[..., 2], np.inf)
    ground = t < 60.0
    hit = origin + np.where(ground, t, 0.0)[..., None] * dirs
    checker = (np.floor(hit[..., 0] / 2.0) + np.floor(hit[..., 1] / 2.0)) % 2
    shade = (
        0.25 + 0.5 * checker[..., None] * np.array([0.9, 0.8, 0.6]) + 0.1 * np.sin(hit[..., :1] * 0.3 + phase)
    )
    sky = ~ground
    rgb = np.where(sky[..., None], SKY_RGB, shade)
    return rgb, np.where(ground, t, 0.0), sky.astype(np.float32)


class AnalyticClips(Dataset):
    """Clips of `num_frames` frames, views `views` of the nuScenes rig at (height, width); ego drives along +x."""

    def __init__(self, num_clips=2, num_frames=7, views=(1, 4), height=16, width=32, speed=5.0, fps=4.0):
        self.num_clips, self.num_frames, self.views = num_clips, num_frames, list(views)
        self.rig = CameraRig.nuscenes().resized(height, width)
        self.height, self.width, self.speed, self.fps = height, width, speed, fps

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict:
        t_len, views = self.num_frames, self.views
        k = self.rig.intrinsics[views]
        cam_to_ego = self.rig.cam_to_ego[views]
        times = np.arange(t_len) / self.fps
        ego_to_world = np.tile(np.eye(4), (t_len, 1, 1))
        ego_to_world[:, 0, 3] = 3.0 * index + self.speed * times
        ego_to_world[:, 1, 3] = 0.5 * index
        images, depth, sky = [], [], []
        for t in range(t_len):
            rows = [
                _render(k[i], ego_to_world[t] @ cam_to_ego[i], self.height, self.width, float(index))
                for i in range(len(views))
            ]
            images.append([r[0] for r in rows])
            depth.append([r[1] for r in rows])
            sky.append([r[2] for r in rows])
        images = torch.tensor(np.array(images), dtype=torch.float32).permute(0, 1, 4, 2, 3) * 2 - 1
        depth = torch.tensor(np.array(depth), dtype=torch.float32)[:, :, None]
        return {
            "images": images,
            "depth": depth,
            "lidar_depth": depth.clone(),
            "sky_mask": torch.tensor(np.array(sky))[:, :, None],
            "has_sky_mask": True,
            "intrinsics": torch.tensor(k, dtype=torch.float32).expand(t_len, -1, -1, -1).clone(),
            "cam_to_ego": torch.tensor(cam_to_ego, dtype=torch.float32).expand(t_len, -1, -1, -1).clone(),
            "ego_to_world": torch.tensor(ego_to_world, dtype=torch.float32),
            "timestamps": torch.tensor(times, dtype=torch.float64),
            "boxes": torch.zeros(t_len, 1, 7),
            "box_categories": torch.full((t_len, 1), -1, dtype=torch.int64),
            "box_ids": torch.full((t_len, 1), -1, dtype=torch.int64),
            "map_polylines": torch.zeros(1, 2, 3),
            "map_types": torch.full((1,), -1, dtype=torch.int64),
            "text": "a straight drive over a checkered plaza",
        }


def test_analytic_depth_lies_on_the_ground_plane():
    clip = AnalyticClips(num_clips=1, num_frames=2)[0]
    k = clip["intrinsics"][0, 0].double().numpy()
    cam_to_world = (clip["ego_to_world"][1] @ clip["cam_to_ego"][1, 0]).double().numpy()
    depth = clip["depth"][1, 0, 0].double().numpy()
    v, u = np.nonzero(depth > 0)
    assert len(v) > 50
    # back-project with the textbook pinhole model: X_cam = z * K^-1 [u + .5, v + .5, 1]
    x_cam = (u + 0.5 - k[0, 2]) / k[0, 0] * depth[v, u]
    y_cam = (v + 0.5 - k[1, 2]) / k[1, 1] * depth[v, u]
    world = cam_to_world[:3, :3] @ np.stack([x_cam, y_cam, depth[v, u]]) + cam_to_world[:3, 3:4]
    np.testing.assert_allclose(world[2], 0.0, atol=1e-6)


def test_analytic_sky_is_where_depth_is_unknown():
    clip = AnalyticClips(num_clips=1, num_frames=1)[0]
    assert torch.equal(clip["sky_mask"] > 0.5, clip["depth"] == 0)
    assert 0.1 < float(clip["sky_mask"].mean()) < 0.9
    assert clip["images"].min() >= -1 and clip["images"].max() <= 1
