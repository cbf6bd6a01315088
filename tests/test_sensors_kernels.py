"""The fast sensor kernels (ray setup, compiled shading in row chunks on threads, LiDAR points) against plain
references."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest
import trimesh
from sensors_numpy_lidar import lidar_points_numpy
from sensors_numpy_radiance import face_radiance_numpy
from sensors_numpy_shading import remainder as numpy_remainder
from sensors_numpy_shading import shade_numpy

import cvd_sim.sensors.parallel as parallel
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.transforms import pose_from_xyz_yaw
from cvd_sim.sensors.culling import camera_agent_mask
from cvd_sim.sensors.lidar import LidarSpec, lidar_points, lidar_rays, lidar_to_ego
from cvd_sim.sensors.materials import SEMANTIC_ID, SEMANTIC_REFLECTIVITY, SEMANTIC_TEXTURE
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.renderer import RaycastRenderer, camera_rays_np
from cvd_sim.sensors.shading import SRGB_LUT, face_radiance, shade
from cvd_sim.sensors.shading_kernel import remainder
from cvd_sim.sensors.texture import WINDOW_LIGHT, WINDOW_TINT, noise_image

H, W = 32, 56
TEXTS = ("A clear daytime drive.", "A rainy night-time drive.", "A cloudy dusk drive.")


def _world() -> MeshSet:
    """Ground, a building (facade windows) and a pole, around the origin."""
    ground = trimesh.Trimesh(
        [[-300, -300, 0], [300, -300, 0], [300, 300, 0], [-300, 300, 0]], [[0, 1, 2], [0, 2, 3]]
    )
    house = trimesh.creation.box(
        (12.0, 8.0, 9.0), trimesh.transformations.translation_matrix((16.0, 9.0, 4.5))
    )
    pole = trimesh.creation.cylinder(
        0.2, 6.0, transform=trimesh.transformations.translation_matrix((6, -4, 3))
    )
    return MeshSet.concatenate(
        [
            MeshSet.from_trimesh(ground, (0.22, 0.22, 0.23), SEMANTIC_ID["road"]),
            MeshSet.from_trimesh(house, (0.6, 0.55, 0.48), SEMANTIC_ID["building"]),
            MeshSet.from_trimesh(pole, (0.45, 0.46, 0.48), SEMANTIC_ID["pole"]),
        ]
    )


def _renderer(text: str) -> RaycastRenderer:
    renderer = RaycastRenderer(static=_world(), text=text, nthreads=1)
    boxes = np.array([[9.0, 1.5, 0.8, 4.6, 1.9, 1.6, 0.4], [5.0, -2.0, 0.875, 0.7, 0.7, 1.75, 1.0]])
    renderer.set_agents(boxes, [0, 7], [3, 8])
    return renderer


def _plain_noise(uv: np.ndarray, texel: float, seed: int) -> np.ndarray:
    idx = np.floor(uv * (1.0 / texel)).astype(np.int64) & 255
    return noise_image(seed)[idx[:, 1], idx[:, 0]]


def _plain_shade(hits, rays: np.ndarray, lighting, radiance: np.ndarray) -> np.ndarray:
    """The straightforward formula, ray by ray in float64: Lambert + ambient per face side, lamp, grain,
    windows, haze, sky, exposure, sRGB table."""
    d = rays.reshape(-1, 6)[:, 3:].astype(np.float64)
    o = rays.reshape(-1, 6)[:, :3].astype(np.float64)
    face, normal = hits.face.reshape(-1), hits.normal.reshape(-1, 3).astype(np.float64)
    miss = ~np.isfinite(hits.t.reshape(-1))
    t = np.where(miss, 0.0, hits.t.reshape(-1))
    cos_nd = (normal * d).sum(1)
    colour = radiance.reshape(-1, 3)[face * 2 + (cos_nd > 0)].astype(np.float64)
    p = o + d * t[:, None]
    wall = np.abs(normal[:, 2]) < 0.7
    uv = np.where(
        wall[:, None], np.stack([p[:, 1] * normal[:, 0] - p[:, 0] * normal[:, 1], p[:, 2]], 1), p[:, :2]
    )
    kind = SEMANTIC_TEXTURE[hits.semantic.reshape(-1)]
    grain = 1.0 + np.array([0.0, 0.15, 0.25, 0.06, 0.55])[kind] * (_plain_noise(uv, 0.1, 1) - 0.5)
    dist = t * np.linalg.norm(d, axis=1)
    if lighting.headlight > 0:
        lamp = lighting.headlight * np.abs(cos_nd) / np.linalg.norm(d, axis=1) / (1 + (dist / 8.0) ** 2)
        colour += hits.albedo.reshape(-1, 3) * lamp[:, None]
    colour *= grain[:, None]
    facade = (kind == 3) & wall
    zf = uv[:, 1] % 3.2
    window = facade & ((uv[:, 0] % 2.6) > 0.6) & (zf > 1.0) & (zf < 2.4) & (uv[:, 1] > 1.2)
    colour[window] *= WINDOW_TINT
    if lighting.time_of_day == "night":
        cells = np.stack([np.floor(uv[:, 0] / 2.6), np.floor(uv[:, 1] / 3.2)], 1)
        colour[window & (_plain_noise(cells, 1.0, 3) > 0.55)] += WINDOW_LIGHT
    fog = np.exp(-lighting.haze_density * dist)[:, None]
    colour = lighting.haze_colour + (colour - lighting.haze_colour) * fog
    u = d[miss] / np.linalg.norm(d[miss], axis=1, keepdims=True)
    sky = lighting.sky_horizon + (lighting.sky_zenith - lighting.sky_horizon) * np.sqrt(
        np.clip(u[:, 2:], 0, 1)
    )
    sky = sky + np.clip(u @ lighting.sun_direction, 0, 1)[:, None] ** 64 * lighting.sun_colour * 0.6
    if lighting.cloud_cover > 0:
        noise = _plain_noise(u[:, :2] / np.maximum(u[:, 2:], 0.05), 0.02, 7)
        cloud = np.clip(noise * 1.6 - 0.8 + lighting.cloud_cover, 0, 1)[:, None]
        sky = sky * (1 - cloud) + lighting.haze_colour * 1.1 * cloud
    colour[miss] = sky
    index = np.clip(colour * lighting.exposure * (len(SRGB_LUT) - 1), 0, len(SRGB_LUT) - 1).astype(int)
    return SRGB_LUT[index].reshape(*hits.t.shape, 3)


@pytest.mark.parametrize("text", TEXTS)
def test_shading_matches_plain_formula(text):
    renderer = _renderer(text)
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(0.0, 0.0, 0.0, 0.3) @ rig.cam_to_ego
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    hits = renderer.caster.cast(rays)
    rgb = renderer.render_cameras(rig.intrinsics, cam_to_world, H, W).rgb
    expected = _plain_shade(hits, rays, renderer.lighting, renderer._radiance)
    assert len(np.unique(hits.semantic)) >= 5  # sky, road, building, pole, agents all in view
    diff = np.abs(rgb.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002  # float32 vs float64 rounding only


@pytest.mark.parametrize("text", TEXTS)
def test_compiled_shading_matches_its_numpy_reference(text):
    renderer = _renderer(text)
    rig = CameraRig.nuscenes(H, W)
    for yaw in np.linspace(0.0, 2 * np.pi, 4, endpoint=False):
        cam_to_world = pose_from_xyz_yaw(1.0, 0.5, 0.0, yaw) @ rig.cam_to_ego
        rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
        hits = renderer.caster.cast(rays)
        rgb = shade(hits, rays, renderer.lighting, renderer._radiance)
        expected = shade_numpy(hits, rays, renderer.lighting, renderer._radiance)
        diff = np.abs(rgb.astype(int) - expected)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # exp and the sun's dot product: float rounding


@pytest.mark.parametrize("text", TEXTS)
def test_compiled_face_radiance_matches_its_numpy_reference_bit_for_bit(text):
    renderer = _renderer(text)
    rng = np.random.default_rng(5)
    tilted = renderer.caster.static.transformed(pose_from_xyz_yaw(*rng.uniform(-5, 5, 3), 0.7))
    for mesh in (renderer.caster.static, renderer.caster.agents, tilted):
        expected = face_radiance_numpy(mesh, renderer.lighting)
        assert face_radiance(mesh, renderer.lighting).tobytes() == expected.tobytes()


@pytest.mark.parametrize("text", TEXTS)
def test_row_chunks_on_threads_give_identical_images(text, monkeypatch):
    renderer = _renderer(text)
    rig = CameraRig.nuscenes(H, W)
    rays = camera_rays_np(rig.intrinsics, rig.cam_to_ego, H, W)
    hits = renderer.caster.cast(rays)
    single = shade(hits, rays, renderer.lighting, renderer._radiance, nthreads=1)
    monkeypatch.setattr(parallel, "MIN_CHUNK_ROWS", 1000)
    monkeypatch.setattr(parallel, "thread_count", lambda nthreads: 3)
    threaded = shade(hits, rays, renderer.lighting, renderer._radiance, nthreads=3)
    assert threaded.tobytes() == single.tobytes()


def test_row_chunks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_CHUNK_ROWS", 10)
    monkeypatch.setattr(parallel, "thread_count", lambda nthreads: nthreads)
    for rows, threads in [(0, 2), (9, 4), (101, 3), (1000, 7)]:
        seen = np.zeros(rows, int)

        def mark(s, seen=seen):
            seen[s] += 1

        parallel.for_row_chunks(mark, rows, threads)
        assert (seen == 1).all()


def test_camera_rays_match_plain_formula():
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(3.0, -2.0, 0.5, 1.1) @ rig.cam_to_ego
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    for view in range(rig.num_views):
        k = rig.intrinsics[view]
        cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
        np.testing.assert_allclose(rays[view, ..., 3:], cam @ cam_to_world[view, :3, :3].T, atol=1e-5)
        np.testing.assert_allclose(
            rays[view, ..., :3], np.broadcast_to(cam_to_world[view, :3, 3], (H, W, 3)), atol=1e-5
        )


def test_lidar_rays_and_points_match_plain_formula():
    spec = LidarSpec(azimuth_steps=400)
    sensor_to_world = pose_from_xyz_yaw(2.0, 1.0, 0.0, 0.6) @ lidar_to_ego()
    rays = lidar_rays(spec, sensor_to_world)
    elev = np.deg2rad(np.linspace(spec.min_elevation_deg, spec.max_elevation_deg, spec.beams))[:, None]
    azim = np.linspace(0, 2 * np.pi, spec.azimuth_steps, endpoint=False)[None]
    local = np.stack(
        np.broadcast_arrays(np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)), -1
    )
    np.testing.assert_allclose(rays[..., 3:], local @ sensor_to_world[:3, :3].T, atol=1e-6)
    np.testing.assert_allclose(rays[..., :3], np.broadcast_to(sensor_to_world[:3, 3], local.shape), atol=1e-5)

    hits = _renderer(TEXTS[0]).caster.cast(rays)
    points, ids = lidar_points(hits, spec, rays)
    keep = (hits.t >= spec.min_range) & (hits.t <= spec.max_range)
    t = np.where(keep, hits.t, 0).astype(np.float64)
    assert 0.2 < keep.mean() < 1.0
    ring = np.broadcast_to(np.arange(spec.beams)[:, None], keep.shape)
    np.testing.assert_allclose(points[:, :3], (local * t[..., None])[keep], atol=1e-4)
    cos_inc = np.abs((hits.normal * rays[..., 3:]).sum(-1))
    refl = SEMANTIC_REFLECTIVITY[hits.semantic]
    intensity = np.clip(255 * refl * (0.3 + 0.7 * cos_inc) * (1 - 0.5 * t / spec.max_range), 0, 255)
    assert np.abs(points[:, 3] - intensity[keep]).max() <= 0.5 + 1e-3  # rounded to whole numbers
    np.testing.assert_array_equal(points[:, 4], ring[keep])
    np.testing.assert_array_equal(ids, hits.instance[keep])


def test_compiled_lidar_points_match_their_numpy_reference_bit_for_bit():
    renderer = _renderer(TEXTS[0])
    spec = LidarSpec()
    for x, yaw in [(0.0, 0.0), (4.0, 2.0)]:
        rays = lidar_rays(spec, pose_from_xyz_yaw(x, 1.0, 0.0, yaw) @ lidar_to_ego())
        hits = renderer.caster.cast(rays)
        points, ids = lidar_points(hits, spec, rays)
        expected_points, expected_ids = lidar_points_numpy(hits, spec, rays)
        assert (ids >= 0).any() and (ids == -1).any()  # agents and static world in the sweep
        assert points.dtype == expected_points.dtype and ids.dtype == expected_ids.dtype
        assert points.tobytes() == expected_points.tobytes() and ids.tobytes() == expected_ids.tobytes()


def _numpy_cast(caster, rays: np.ndarray, agent_mask: np.ndarray | None):
    """Two-level first hits merged in plain numpy (the reference of `hit_merge`) -> t, face, normal (flat)."""
    flat = np.ascontiguousarray(rays, np.float32).reshape(-1, 6)
    out = caster._static_scene.cast_rays(o3d.core.Tensor.from_numpy(flat))
    t, normal = out["t_hit"].numpy(), out["primitive_normals"].numpy()
    face = out["primitive_ids"].numpy().astype(np.int64)
    sel = np.arange(len(flat)) if agent_mask is None else np.flatnonzero(agent_mask.reshape(-1))
    out_a = caster._agent_scene.cast_rays(o3d.core.Tensor.from_numpy(flat[sel]))
    nearer = np.flatnonzero(out_a["t_hit"].numpy() < t[sel])
    rows = sel[nearer]
    t[rows] = out_a["t_hit"].numpy()[nearer]
    face[rows] = out_a["primitive_ids"].numpy()[nearer].astype(np.int64) + caster.static.num_faces
    normal[rows] = out_a["primitive_normals"].numpy()[nearer]
    return t, np.minimum(face, caster.miss_face), normal


def test_compiled_hit_merge_matches_its_numpy_reference_bit_for_bit():
    renderer = _renderer(TEXTS[0])
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(0.0, 0.0, 0.0, 0.3) @ rig.cam_to_ego
    rays = camera_rays_np(rig.intrinsics, cam_to_world, H, W)
    cull = camera_agent_mask(renderer.boxes, rig.intrinsics, cam_to_world, H, W)
    for mask in (cull, None):
        hits = renderer.caster.cast(rays, mask)
        t, face, normal = _numpy_cast(renderer.caster, rays, mask)
        assert (face >= renderer.caster.static.num_faces).sum() > 20  # agents in view
        assert (face == renderer.caster.miss_face).any()
        assert hits.face.dtype == face.dtype
        for got, expected in [(hits.t, t), (hits.face, face), (hits.normal, normal)]:
            assert got.reshape(expected.shape).tobytes() == expected.tobytes()


def test_compiled_pixel_labels_match_their_numpy_reference_bit_for_bit():
    renderer = _renderer(TEXTS[0])
    rig = CameraRig.nuscenes(H, W)
    cam_to_world = pose_from_xyz_yaw(0.0, 0.0, 0.0, 0.3) @ rig.cam_to_ego
    hits = renderer.caster.cast(camera_rays_np(rig.intrinsics, cam_to_world, H, W))
    frame = renderer.render_cameras(rig.intrinsics, cam_to_world, H, W)
    sky = ~hits.hit
    assert sky.any() and (hits.instance >= 0).any()
    expected = (np.where(sky, np.float32(0), hits.t), hits.semantic.astype(np.uint8), hits.instance, sky)
    labels = (frame.depth, frame.semantic, frame.instance, frame.sky_mask)
    for got, plain in zip(labels, expected, strict=True):
        assert got.dtype == plain.dtype and got.shape == plain.shape and got.tobytes() == plain.tobytes()


def test_fast_remainders_match_numpy_bit_for_bit():
    rng = np.random.default_rng(0)
    for b in (3.2, 2.6):
        multiples = (rng.integers(-5000, 5000, 20000) * np.float32(b)).astype(np.float32)
        a = np.concatenate(
            [
                rng.uniform(-2000, 2000, 50000).astype(np.float32),
                multiples,
                np.nextafter(multiples, np.float32(np.inf)),
                np.nextafter(multiples, np.float32(-np.inf)),
                np.array([0.0, -0.0, 1e-30, -1e-30, -1e-45, 1e-45], np.float32),
            ]
        )
        expected = (a % b).view(np.uint32)
        got = numpy_remainder(a, b)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), expected)
        compiled = np.array([remainder(x, np.float32(b)) for x in a], np.float32)
        np.testing.assert_array_equal(compiled.view(np.uint32), expected)
