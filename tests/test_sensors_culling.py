"""Agent culls against brute-force ray/box tests, and renders with culled agent casts equal to full ones."""

from __future__ import annotations

import numpy as np
import pytest
from cvd_sim.scenarios.categories import CATEGORIES
from sensors_numpy_culling import camera_agent_mask_numpy, lidar_agent_mask_numpy

import cvd_sim.sensors.renderer as renderer_module
from cvd_sim.bench.synth import random_rollout
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import pose_from_xyz_yaw
from cvd_sim.sensors.agent_meshes import agent_meshes, instance_paint
from cvd_sim.sensors.agent_shapes import agent_template
from cvd_sim.sensors.culling import camera_agent_mask, lidar_agent_mask
from cvd_sim.sensors.lidar import LidarSpec, lidar_rays, lidar_to_ego
from cvd_sim.sensors.materials import agent_semantic_id
from cvd_sim.sensors.renderer import RaycastRenderer, camera_rays_np
from cvd_sim.sensors.scenario_map import map_geometry

H, W = 36, 64


def _hits_box(rays: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Brute force in float64: does each ray [..., 6] meet the oriented box [7] at a t > 0? -> [...] bool."""
    c, s = np.cos(box[6]), np.sin(box[6])
    to_box = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])  # world -> box axes
    o = (rays[..., :3].astype(np.float64) - box[:3]) @ to_box.T
    d = rays[..., 3:].astype(np.float64) @ to_box.T
    half = box[3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (-half - o) / d, (half - o) / d
    near = np.nanmax(np.minimum(t0, t1), axis=-1)
    far = np.nanmin(np.maximum(t0, t1), axis=-1)
    return (far >= near) & (far > 0)


def _boxes(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    dims = np.array([CATEGORIES[i].size_lwh for i in rng.integers(0, len(CATEGORIES), n)])
    xy = rng.uniform(-spread, spread, (n, 2))
    return np.column_stack([xy, dims[:, 2] / 2, dims, rng.uniform(-np.pi, np.pi, n)])


def test_camera_cull_keeps_every_pixel_whose_ray_meets_a_box():
    rng = np.random.default_rng(3)
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(0.0, 0.0, 0.0, 0.4) @ rig.cam_to_ego
    boxes = np.concatenate(
        [
            _boxes(rng, 20, 25.0),
            [[1.2, 2.2, 0.8, 4.6, 1.9, 1.6, 0.3]],  # beside the rig: straddles several camera planes
            [[-1.5, -0.3, 0.8, 4.6, 1.9, 1.6, 0.0]],  # around the rear camera: it sees nothing else
        ]
    )
    mask = camera_agent_mask(boxes, rig.intrinsics, cam_to_world, H, W)
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    reached = np.zeros(mask.shape, bool)
    for box in boxes:
        reached |= _hits_box(rays, box)
    assert reached.mean() > 0.05
    assert not (reached & ~mask).any()


def test_camera_cull_clips_a_box_behind_the_camera_plane():
    rig = CameraRig.nuscenes(H, W)
    cam = rig.cam_to_ego[:1]
    right, forward = cam[0, :3, 0], cam[0, :3, 2]  # both horizontal in this rig
    centre = cam[0, :3, 3] + 2.0 * right  # 6 m long along the optical axis: half ahead, half behind
    box = np.array([[*centre, 6.0, 1.0, 1.0, np.arctan2(forward[1], forward[0])]])
    mask = camera_agent_mask(box, rig.intrinsics[:1], cam, H, W)[0]
    reached = _hits_box(camera_rays_np(rig.intrinsics[:1], cam, H, W)[0], box[0])
    assert reached.any() and not (reached & ~mask).any()
    assert not mask[:, : W // 2].any()  # a box on the right leaves the left half alone


def test_lidar_cull_keeps_every_beam_that_meets_a_box():
    rng = np.random.default_rng(4)
    spec = LidarSpec(azimuth_steps=720)
    sensor_to_world = pose_from_xyz_yaw(0.5, -0.3, 0.0, 1.0) @ lidar_to_ego()
    boxes = _boxes(rng, 25, 30.0)
    boxes = boxes[np.hypot(*(boxes[:, :2] - sensor_to_world[:2, 3]).T) > 4.0]  # the sensor is outside all
    mask = lidar_agent_mask(boxes, spec, sensor_to_world)
    rays = lidar_rays(spec, sensor_to_world)
    reached = np.zeros(mask.shape, bool)
    for box in boxes:
        reached |= _hits_box(rays, box)
    assert reached.mean() > 0.01
    assert not (reached & ~mask).any()
    assert mask.mean() < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_culls_match_their_numpy_references_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    rig = CameraRig.nuscenes(H, W)
    spec = LidarSpec()
    for yaw in np.linspace(-np.pi, np.pi, 5, endpoint=False):
        ego_to_world = pose_from_xyz_yaw(*rng.uniform(-3, 3, 2), 0.0, yaw)
        beside = ego_to_world @ np.array([1.2, 2.2, 0.8, 1.0])  # straddles several camera planes
        boxes = np.concatenate([_boxes(rng, 30, 30.0), [[*beside[:3], 4.6, 1.9, 1.6, 0.3]]])
        cams, sensor = ego_to_world @ rig.cam_to_ego, ego_to_world @ lidar_to_ego()
        mask = camera_agent_mask(boxes, rig.intrinsics, cams, H, W)
        assert mask.any() and np.array_equal(mask, camera_agent_mask_numpy(boxes, rig.intrinsics, cams, H, W))
        far = boxes[np.hypot(*(boxes[:, :2] - sensor[:2, 3]).T) > 4.0][:8]  # sensor outside: not all beams
        mask = lidar_agent_mask(far, spec, sensor)
        assert 0 < mask.mean() < 1 and np.array_equal(mask, lidar_agent_mask_numpy(far, spec, sensor))
        around = lidar_agent_mask(boxes, spec, sensor)  # the sensor inside the circle round `beside`
        assert around.all() and np.array_equal(around, lidar_agent_mask_numpy(boxes, spec, sensor))


@pytest.mark.parametrize("brushing_car", [False, True])
def test_culled_agent_casts_render_the_same_bytes_as_full_casts(monkeypatch, brushing_car):
    scenario, snaps = random_rollout(3, 3)
    renderer = RaycastRenderer(map_geometry(scenario.map), text="A rainy night-time drive.", seed=3)
    rig = CameraRig.nuscenes(H, W)
    spec = LidarSpec(azimuth_steps=540)

    def render_all() -> list[np.ndarray]:
        out = []
        for snap in snaps:
            boxes, categories, ids = snap.boxes, snap.categories, snap.instance_ids
            if brushing_car:  # straddles camera planes, and its footprint circle holds the LiDAR
                near = snap.ego_to_world @ np.array([2.0, 1.4, 0.8, 1.0])
                boxes = np.concatenate([boxes, [[*near[:3], 4.6, 1.9, 1.6, 0.2]]])
                categories, ids = [*categories, 0], [*ids, 999]
            renderer.set_agents(boxes, categories, ids)
            frame = renderer.render_cameras(rig.intrinsics, snap.ego_to_world @ rig.cam_to_ego, H, W)
            points, point_ids = renderer.render_lidar(snap.ego_to_world @ lidar_to_ego(), spec)
            out += [frame.rgb, frame.depth, frame.semantic, frame.instance, frame.sky_mask, points, point_ids]
        return out

    culled = render_all()
    assert (np.concatenate([a.ravel() for a in culled[3::7]]) >= 0).sum() > 30  # agents in the images
    assert (np.concatenate(culled[6::7]) >= 0).sum() > 20  # and in the sweeps
    monkeypatch.setattr(renderer_module, "camera_agent_mask", lambda *args: None)  # agents cast on every ray
    monkeypatch.setattr(renderer_module, "lidar_agent_mask", lambda *args: None)
    full = render_all()
    for a, b in zip(culled, full, strict=True):
        assert a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", [0, 1])
def test_agent_meshes_match_one_template_placed_per_agent(seed):
    rng = np.random.default_rng(seed)
    n = 9
    categories = rng.integers(0, len(CATEGORIES), n)
    boxes = _boxes(rng, n, 20.0)
    ids = rng.integers(0, 500, n)
    mesh = agent_meshes(boxes, categories, ids, seed)
    verts, faces, albedo, semantic, instance = [], [], [], [], []
    for i in sorted(range(n), key=lambda i: (categories[i], i)):  # grouped by category, input order within
        tpl = agent_template(int(categories[i]))
        x, y, z, length, width, height, yaw = boxes[i]
        local = tpl.vertices.astype(np.float64) * (length, width, height)
        c, s = np.cos(yaw), np.sin(yaw)
        verts.append(local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + (x, y, z - height / 2))
        faces.append(tpl.faces + sum(len(v) for v in verts[:-1]))
        paint = instance_paint(ids[i : i + 1], seed)[0]
        albedo.append(np.where(tpl.paint_mask[:, None], paint, tpl.face_albedo))
        semantic.append(np.full(len(tpl.faces), agent_semantic_id(int(categories[i]))))
        instance.append(np.full(len(tpl.faces), ids[i]))
    np.testing.assert_allclose(mesh.vertices, np.concatenate(verts), atol=1e-5)
    np.testing.assert_array_equal(mesh.faces, np.concatenate(faces))
    np.testing.assert_array_equal(mesh.face_albedo, np.concatenate(albedo).astype(np.float32))
    np.testing.assert_array_equal(mesh.face_semantic, np.concatenate(semantic))
    np.testing.assert_array_equal(mesh.face_instance, np.concatenate(instance))
    assert agent_meshes(np.zeros((0, 7)), [], []).num_faces == 0
    with pytest.raises(KeyError):
        agent_meshes(boxes[:1], [len(CATEGORIES)], [0])
