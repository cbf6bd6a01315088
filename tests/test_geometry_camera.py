"""Camera rig, transforms, projection with near-plane clipping and ray maps against brute-force references."""

from __future__ import annotations

import numpy as np
import torch
from cvd_sim.scenarios.schema import CameraRigSpec

from cvd_sim.geometry.camera import NUSCENES_CAMERAS, CameraRig
from cvd_sim.geometry.projection import clip_segments_near, project_points, project_segments
from cvd_sim.geometry.rays import camera_rays, plucker_rays
from cvd_sim.geometry.transforms import (
    apply_transform,
    invert_pose,
    pose_from_xyz_yaw,
    xyz_yaw_from_pose,
)


def test_pose_roundtrip_and_inverse():
    rng = np.random.default_rng(0)
    params = rng.uniform(-5, 5, size=(10, 4))
    pose = pose_from_xyz_yaw(*params.T)
    back = xyz_yaw_from_pose(pose)
    np.testing.assert_allclose(back[:, :3], params[:, :3])
    np.testing.assert_allclose(np.cos(back[:, 3]), np.cos(params[:, 3]), atol=1e-12)
    np.testing.assert_allclose(invert_pose(pose) @ pose, np.broadcast_to(np.eye(4), pose.shape), atol=1e-12)
    np.testing.assert_allclose(invert_pose(pose), np.linalg.inv(pose), atol=1e-12)
    pts = rng.normal(size=(10, 7, 3))
    homog = np.concatenate([pts, np.ones((10, 7, 1))], -1)
    ref = np.einsum("bij,bnj->bni", pose, homog)[..., :3]
    np.testing.assert_allclose(apply_transform(pose, pts), ref, atol=1e-12)
    torch_out = apply_transform(torch.as_tensor(pose), torch.as_tensor(pts))
    np.testing.assert_allclose(torch_out.numpy(), ref, atol=1e-12)


def test_nuscenes_rig_orientation_and_scaling():
    full = CameraRig.nuscenes()
    assert full.names == NUSCENES_CAMERAS and (full.height, full.width) == (900, 1600)
    yaw = np.degrees(full.yaw_in_ego())
    np.testing.assert_allclose(yaw[:3], [55, 0, -55], atol=2.5)
    np.testing.assert_allclose(np.abs(yaw[4]), 180, atol=1.0)
    np.testing.assert_allclose(yaw[[3, 5]], [-110, 110], atol=2.5)
    # camera y (down) must point to ego -z for every camera
    np.testing.assert_allclose(full.cam_to_ego[:, 2, 1], -1.0, atol=0.03)
    small = CameraRig.nuscenes(256, 448)
    # a point seen at the full-resolution image centre lands at the scaled, centre-cropped position
    scale = max(256 / 900, 448 / 1600)
    pts = np.array([[1.0, -0.5, 8.0]])
    uv_full, _ = project_points(pts[None], full.intrinsics)
    uv_small, _ = project_points(pts[None], small.intrinsics)
    offset = np.array([(1600 * scale - 448) / 2, (900 * scale - 256) / 2])
    np.testing.assert_allclose(uv_small, uv_full * scale - offset, atol=1e-9)


def test_rig_from_scenario_spec():
    preset = CameraRig.from_spec(CameraRigSpec(preset="nuscenes", height=256, width=448))
    np.testing.assert_allclose(preset.intrinsics, CameraRig.nuscenes(256, 448).intrinsics)
    pose = np.eye(4)
    pose[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # OpenCV camera looking along ego +x
    spec = CameraRigSpec(
        preset=None,
        height=100,
        width=200,
        cameras=[
            {
                "name": "front",
                "intrinsics": [[100, 0, 100], [0, 100, 50], [0, 0, 1]],
                "cam_to_ego": pose.tolist(),
            }
        ],
    )
    rig = CameraRig.from_spec(spec)
    assert rig.names == ("front",) and (rig.height, rig.width) == (100, 200)
    np.testing.assert_allclose(rig.yaw_in_ego(), [0.0], atol=1e-12)


def test_projected_box_corners_match_bruteforce_pinhole():
    rig = CameraRig.nuscenes(256, 448)
    rng = np.random.default_rng(1)
    corners = rng.uniform([-30, -30, -1], [30, 30, 3], size=(200, 3))
    ego_to_cam = rig.ego_to_cam()
    for v in range(rig.num_views):
        r, t = ego_to_cam[v, :3, :3], ego_to_cam[v, :3, 3]
        k = rig.intrinsics[v]
        uv, depth = project_points((corners @ r.T + t)[None], k[None])
        for i, p in enumerate(corners):
            x, y, z = r @ p + t
            assert np.isclose(depth[0, i], z)
            if z > 0.1:
                u_ref = k[0, 0] * x / z + k[0, 2]
                v_ref = k[1, 1] * y / z + k[1, 2]
                np.testing.assert_allclose(uv[0, i], [u_ref, v_ref], rtol=1e-10)


def test_segment_crossing_image_plane_is_clipped_not_wrapped():
    k = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    # from 10 m ahead and 1 m right to 5 m behind: after clipping the end must stay on the right side
    start = np.array([[1.0, 0.0, 10.0]])
    end = np.array([[1.0, 0.0, -5.0]])
    s, e, keep = clip_segments_near(start, end, near=0.5)
    assert keep[0]
    np.testing.assert_allclose(e[0], [1.0, 0.0, 0.5])
    uv, _ = project_points(np.stack([s, e], 1), k[None])
    assert np.isclose(
        uv[0, 1, 0], 50 + 100 * 1.0 / 0.5
    )  # far right of the principal point, not mirrored left
    # naive projection of the unclipped end wraps to the left side: the bug we avoid
    assert 50 + 100 * 1.0 / -5.0 < 50
    # entirely behind: dropped
    _, _, keep2 = clip_segments_near(np.array([[0, 0, -1.0]]), np.array([[1, 0, -2.0]]), near=0.5)
    assert not keep2[0]
    # both-views API agrees with the brute-force per-camera clip
    rig = CameraRig.nuscenes(128, 224)
    a = np.array([[5.0, 1.0, 0.0], [-3.0, 2.0, 0.5]])
    b = np.array([[-5.0, 1.0, 0.0], [10.0, -4.0, 0.0]])
    uv_s, uv_e, _, keep_all = project_segments(a, b, rig.ego_to_cam(), rig.intrinsics, near=0.2)
    for v in range(rig.num_views):
        r, t = rig.ego_to_cam()[v, :3, :3], rig.ego_to_cam()[v, :3, 3]
        for i in range(len(a)):
            pa, pb = r @ a[i] + t, r @ b[i] + t
            if pa[2] < 0.2 and pb[2] < 0.2:
                assert not keep_all[v, i]
                continue
            if pa[2] < 0.2:
                pa = pa + (0.2 - pa[2]) / (pb[2] - pa[2]) * (pb - pa)
            if pb[2] < 0.2:
                pb = pb + (0.2 - pb[2]) / (pa[2] - pb[2]) * (pa - pb)
            k = rig.intrinsics[v]
            np.testing.assert_allclose(uv_s[v, i], (k @ pa)[:2] / pa[2], rtol=1e-9)
            np.testing.assert_allclose(uv_e[v, i], (k @ pb)[:2] / pb[2], rtol=1e-9)


def test_camera_rays_reproject_to_their_pixels_and_plucker():
    rig = CameraRig.nuscenes(16, 28)
    t = rig.torch(torch.float64)
    origins, dirs = camera_rays(t["intrinsics"], t["cam_to_ego"], 16, 28)
    assert origins.shape == (6, 16, 28, 3) and dirs.shape == (6, 16, 28, 3)
    # a point at depth 7 along the ray of pixel (u, v) projects back to that pixel centre with z = 7
    pts = (origins + 7.0 * dirs).reshape(6, -1, 3).numpy()
    cam = apply_transform(rig.ego_to_cam(), pts)
    uv, z = project_points(cam, rig.intrinsics)
    np.testing.assert_allclose(z, 7.0, atol=1e-9)
    vv, uu = np.meshgrid(np.arange(16) + 0.5, np.arange(28) + 0.5, indexing="ij")
    np.testing.assert_allclose(
        uv, np.broadcast_to(np.stack([uu, vv], -1).reshape(-1, 2), uv.shape), atol=1e-8
    )
    pl = plucker_rays(t["intrinsics"], t["cam_to_ego"], 16, 28)
    assert pl.shape == (6, 6, 16, 28)
    d_hat = pl[:, 3:].movedim(1, -1)
    moment = pl[:, :3].movedim(1, -1)
    torch.testing.assert_close(d_hat.norm(dim=-1), torch.ones(6, 16, 28, dtype=torch.float64))
    # the moment is the same for any point on the line: (o + s d) x d_hat = o x d_hat
    torch.testing.assert_close(torch.linalg.cross(origins + 3.0 * dirs, d_hat, dim=-1), moment)
    torch.testing.assert_close((moment * d_hat).sum(-1), torch.zeros(6, 16, 28, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # geometry stays float32 under autocast
        pl32 = plucker_rays(t["intrinsics"].float(), t["cam_to_ego"].float(), 16, 28)
    assert pl32.dtype == torch.float32
    torch.testing.assert_close(pl32, pl.float(), atol=1e-5, rtol=1e-5)
