"""Ray-cast sensors against analytic geometry and brute-force references."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import trimesh
from cvd_sim.scenarios.categories import CATEGORIES, CATEGORY_ID

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import apply_transform, invert_pose, pose_from_xyz_yaw
from cvd_sim.sensors.agent_meshes import agent_meshes
from cvd_sim.sensors.lidar import LidarSpec, lidar_rays, lidar_to_ego
from cvd_sim.sensors.materials import SEMANTIC_ID, SKY_ID, agent_semantic_id
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.renderer import RaycastRenderer, camera_rays_np

H, W = 24, 40


def _camera(position, yaw: float, pitch: float = 0.0) -> np.ndarray:
    """OpenCV camera-to-world at `position` looking along heading `yaw`, tilted down by `pitch` (rad)."""
    ego = pose_from_xyz_yaw(*position, yaw)
    base = np.array(
        [[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float
    )  # cam -> x fwd, y left, z up
    tilt = np.eye(4)
    c, s = np.cos(pitch), np.sin(pitch)
    tilt[:3, :3] = [[1, 0, 0], [0, c, s], [0, -s, c]]  # optical axis (camera z) turned towards +y (down)
    return ego @ base @ tilt


def _k(f: float = 30.0) -> np.ndarray:
    return np.array([[f, 0, W / 2 + 0.3], [0, f, H / 2 - 0.2], [0, 0, 1]])


def _ground(size: float = 400.0) -> MeshSet:
    plane = trimesh.Trimesh(
        [[-size, -size, 0], [size, -size, 0], [size, size, 0], [-size, size, 0]], [[0, 1, 2], [0, 2, 3]]
    )
    return MeshSet.from_trimesh(plane, (0.3, 0.3, 0.3), SEMANTIC_ID["road"])


def test_plane_depth_matches_analytic_intersection():
    cam = _camera((1.0, 2.0, 1.6), yaw=0.4, pitch=0.35)
    renderer = RaycastRenderer(static=_ground())
    frame = renderer.render_cameras(_k()[None], cam[None], H, W)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    rays_cam = np.stack([(u - _k()[0, 2]) / _k()[0, 0], (v - _k()[1, 2]) / _k()[1, 1], np.ones_like(u)], -1)
    dirs = rays_cam @ cam[:3, :3].T  # camera z = 1 along each ray
    t = -cam[2, 3] / dirs[..., 2]
    expected = np.where((dirs[..., 2] < 0), t, 0.0)  # z-depth = t because camera-frame z of dirs is 1
    assert (expected > 0).sum() > H * W // 3 and (expected == 0).sum() > 0
    np.testing.assert_allclose(frame.depth[0], expected, atol=1e-3)
    np.testing.assert_array_equal(frame.sky_mask[0], expected == 0)
    assert (frame.semantic[0][expected == 0] == SKY_ID).all()


def _slab_depth(origins, dirs, lo, hi) -> np.ndarray:
    """Brute-force ray/axis-aligned-box first hit distance (inf = miss)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (lo - origins) / dirs, (hi - origins) / dirs
    near = np.nanmax(np.minimum(t0, t1), axis=-1)
    far = np.nanmin(np.maximum(t0, t1), axis=-1)
    return np.where((far >= near) & (far > 0), np.maximum(near, 0), np.inf)


def test_box_depth_matches_slab_reference():
    lo, hi = np.array([8.0, -1.5, 0.2]), np.array([11.0, 2.0, 2.5])
    box = trimesh.creation.box(
        extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2)
    )
    renderer = RaycastRenderer(static=MeshSet.from_trimesh(box, (0.5, 0.2, 0.2), SEMANTIC_ID["building"]))
    cam = _camera((0.0, 0.3, 1.2), yaw=0.1)
    rays = camera_rays_np(_k(20.0)[None], cam[None], H, W)[0]
    expected = _slab_depth(rays[..., :3].astype(np.float64), rays[..., 3:].astype(np.float64), lo, hi)
    frame = renderer.render_cameras(_k(20.0)[None], cam[None], H, W)
    hit = np.isfinite(expected)
    assert 0.03 < hit.mean() < 0.9
    np.testing.assert_allclose(frame.depth[0][hit], expected[hit], atol=1e-3)
    assert (frame.depth[0][~hit] == 0).all()
    assert (frame.semantic[0][hit] == SEMANTIC_ID["building"]).all()


def test_pixel_ray_and_hit_point_round_trip():
    boxes = np.array([[12.0, 0.5, 0.8, 4.6, 1.9, 1.6, 0.3], [7.0, -3.0, 0.875, 0.7, 0.7, 1.75, 1.0]])
    renderer = RaycastRenderer(static=_ground())
    renderer.set_agents(boxes, [CATEGORY_ID["car"], CATEGORY_ID["pedestrian"]], [4, 9])
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(0, 0, 0, 0.0) @ rig.cam_to_ego
    frame = renderer.render_cameras(rig.intrinsics, cam_to_world, H, W)
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    meshes = MeshSet.concatenate([renderer.caster.static, renderer.caster.agents])
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(meshes.vertices), o3d.core.Tensor(meshes.faces.astype(np.uint32)))
    for view in range(rig.num_views):
        hit = frame.depth[view] > 0
        points = rays[view, ..., :3] + rays[view, ..., 3:] * frame.depth[view][..., None]
        cam = apply_transform(invert_pose(cam_to_world[view]), points[hit].astype(np.float64))
        np.testing.assert_allclose(cam[:, 2], frame.depth[view][hit], rtol=1e-5, atol=1e-4)  # z-depth
        uv = cam @ rig.intrinsics[view].T
        np.testing.assert_allclose(uv[:, 0] / uv[:, 2], u[hit], atol=1e-3)
        np.testing.assert_allclose(uv[:, 1] / uv[:, 2], v[hit], atol=1e-3)
        dist = scene.compute_distance(o3d.core.Tensor(points[hit].astype(np.float32))).numpy()
        assert dist.max() < 1e-3
    front = frame.instance[1]
    assert {4, 9} <= set(np.unique(frame.instance).tolist())
    assert (frame.semantic[1][front == 4] == agent_semantic_id(CATEGORY_ID["car"])).all()


def test_lidar_points_lie_on_mesh_surfaces():
    boxes = np.array([[10.0, 2.0, 0.8, 4.6, 1.9, 1.6, 0.0], [-6.0, -4.0, 1.6, 7.5, 2.5, 3.2, 1.2]])
    renderer = RaycastRenderer(static=_ground())
    renderer.set_agents(boxes, [0, 1], [1, 2])
    sensor_to_world = pose_from_xyz_yaw(3.0, 1.0, 0.0, 0.2) @ lidar_to_ego()
    spec = LidarSpec(azimuth_steps=360)
    points, ids = renderer.render_lidar(sensor_to_world, spec)
    assert points.shape[1] == 5 and len(points) > 1000
    world = apply_transform(sensor_to_world, points[:, :3].astype(np.float64))
    meshes = MeshSet.concatenate([renderer.caster.static, renderer.caster.agents])
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(meshes.vertices), o3d.core.Tensor(meshes.faces.astype(np.uint32)))
    assert scene.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy().max() < 1e-3
    ranges = np.linalg.norm(points[:, :3], axis=1)
    assert ranges.min() >= spec.min_range and ranges.max() <= spec.max_range
    assert set(np.unique(points[:, 4]).astype(int)) <= set(range(spec.beams))
    assert 0 <= points[:, 3].min() and points[:, 3].max() <= 255
    assert {1, 2} <= set(np.unique(ids).tolist())


def test_agent_culling_never_changes_hits():
    rng = np.random.default_rng(0)
    n = 12
    boxes = np.column_stack(
        [
            rng.uniform(-25, 25, (n, 2)),
            np.full(n, 0.8),
            np.full((n, 3), (4.6, 1.9, 1.6)),
            rng.uniform(-3, 3, n),
        ]
    )
    boxes[0, :2] = (2.5, 0.0)  # right in front of the rig, straddling camera planes
    renderer = RaycastRenderer(static=_ground())
    renderer.set_agents(boxes, np.zeros(n, int), np.arange(n))
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = rig.cam_to_ego
    culled = renderer.render_cameras(rig.intrinsics, cam_to_world, H, W)
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    full = renderer.caster.cast(rays)
    np.testing.assert_array_equal(culled.instance, full.instance)
    spec = LidarSpec(azimuth_steps=720)
    _, ids = renderer.render_lidar(lidar_to_ego(), spec)
    full_hits = renderer.caster.cast(lidar_rays(spec, lidar_to_ego()))
    keep = (full_hits.t >= spec.min_range) & (full_hits.t <= spec.max_range)
    np.testing.assert_array_equal(ids, full_hits.instance[keep])


@pytest.mark.parametrize("category", range(len(CATEGORIES)))
def test_agent_meshes_stay_inside_their_boxes(category):
    lwh = np.array(CATEGORIES[category].size_lwh)
    box = np.array([[3.0, -2.0, 0.3 + lwh[2] / 2, *lwh, 0.7]])
    mesh = agent_meshes(box, [category], [5])
    local = apply_transform(
        invert_pose(pose_from_xyz_yaw(3.0, -2.0, 0.3, 0.7)), mesh.vertices.astype(np.float64)
    )
    assert (np.abs(local[:, :2]) <= lwh[:2] / 2 + 1e-5).all()
    assert local[:, 2].min() >= -1e-5 and local[:, 2].max() <= lwh[2] + 1e-5
    extent = local.max(0) - local.min(0)
    assert (extent > lwh * 0.4).all()  # fills its box, not a speck
    assert (mesh.face_instance == 5).all()


def test_scene_text_sets_time_and_weather():
    rig = CameraRig.nuscenes(H, W)
    means = {}
    for text in ("A clear daytime drive.", "A rainy night-time drive.", "A cloudy dusk drive."):
        renderer = RaycastRenderer(static=_ground(), text=text)
        frame = renderer.render_cameras(rig.intrinsics, rig.cam_to_ego, H, W)
        means[text] = frame.rgb.astype(float).mean()
        assert (
            renderer.render_cameras(rig.intrinsics, rig.cam_to_ego, H, W).rgb.tobytes() == frame.rgb.tobytes()
        )
    lighting = RaycastRenderer(static=_ground(), text="A rainy night-time drive.").lighting
    assert (lighting.time_of_day, lighting.weather) == ("night", "rain")
    assert (
        means["A rainy night-time drive."] < means["A cloudy dusk drive."] < means["A clear daytime drive."]
    )
