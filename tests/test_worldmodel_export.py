"""`cvd-sim export-gaussians`: standard 3DGS .ply files (read back with plyfile) whose Gaussians sit on the rays
of the pixels they came from, in the first ego frame."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from cvd_sim.envs.worldmodel_backend import rotate_quaternions
from cvd_sim.envs.worldmodel_random import save_random_world_model
from plyfile import PlyData
from scipy.spatial.transform import Rotation

from cvd_sim.cli import main
from cvd_sim.geometry.camera import CameraRig

VIEWER = Path(__file__).resolve().parents[1] / "examples" / "view_gaussians.py"


def test_export_writes_plys_whose_gaussians_lie_on_their_pixel_rays(tmp_path):
    folder = save_random_world_model(tmp_path / "wm", micro=True)
    out, index = tmp_path / "ply", tmp_path / "frames.json"
    args = ["export-gaussians", "--model", str(folder), "--steps", "2", "--size", "32x64"]
    assert main([*args, "--out", str(out), "--json", str(index)]) == 0
    frames = json.loads(index.read_text())["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 2]
    rig = CameraRig.nuscenes(32, 64)
    h, w = 32, 64
    rows, cols = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    for frame in (frames[0], frames[2]):
        vertex = PlyData.read(frame["path"])["vertex"]
        assert vertex.count == 6 * h * w == frame["count"]
        xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], 1).astype(np.float64)
        ego_to_first = np.array(frame["ego_to_first"])
        for v in (0, 4):  # views are stored in rig order, pixels row-major
            pts = xyz[v * h * w : (v + 1) * h * w]
            cam = np.linalg.inv(ego_to_first @ rig.cam_to_ego[v])  # first ego frame -> camera v
            local = pts @ cam[:3, :3].T + cam[:3, 3]
            uv = local @ rig.intrinsics[v].T
            assert np.all(local[:, 2] > 0)
            np.testing.assert_allclose(uv[:, 0] / uv[:, 2], cols.ravel(), atol=2e-2)
            np.testing.assert_allclose(uv[:, 1] / uv[:, 2], rows.ravel(), atol=2e-2)
    assert main([*args, "--min-opacity", "1.5", "--out", str(out)]) == 2

    # the open3d viewer example reads the same points
    spec = importlib.util.spec_from_file_location("view_gaussians", VIEWER)
    viewer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(viewer)
    cloud = viewer.point_cloud(Path(frames[0]["path"]), min_opacity=0.0, max_range=1e9)
    vertex = PlyData.read(frames[0]["path"])["vertex"]
    np.testing.assert_allclose(np.asarray(cloud.points)[:, 0], vertex["x"], rtol=1e-6)
    assert len(cloud.points) == 6 * h * w and np.asarray(cloud.colors).max() <= 1.0


def test_rotate_quaternions_composes_rotations():
    turn = Rotation.from_euler("zyx", [0.7, -0.2, 0.1])
    quats = Rotation.random(5, random_state=1).as_quat()[:, [3, 0, 1, 2]]  # wxyz
    got = rotate_quaternions(torch.from_numpy(turn.as_matrix()), torch.from_numpy(quats)).numpy()
    expected = (turn * Rotation.from_quat(quats[:, [1, 2, 3, 0]])).as_matrix()
    np.testing.assert_allclose(Rotation.from_quat(got[:, [1, 2, 3, 0]]).as_matrix(), expected, atol=1e-12)
