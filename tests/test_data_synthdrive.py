"""SynthDrive written in the nuScenes layout, read back by nuscenes-devkit and by our clip loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import BoxVisibility, view_points
from PIL import Image

from cvd_sim.data.image_ops import load_label
from cvd_sim.data.map_polylines import open_map
from cvd_sim.data.nuscenes_clips import NuScenesClips
from cvd_sim.data.nuscenes_writer import DEPTH_SCALE, SceneWriter
from cvd_sim.data.synthdrive import SynthConfig, scene_name, synthesize
from cvd_sim.data.tokens import token
from cvd_sim.geometry.boxes import box_corners_3d
from cvd_sim.geometry.camera import NUSCENES_CAMERAS

CONFIG = SynthConfig(scenes=2, frames=3, height=48, width=84, lidar_azimuth_steps=540)


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthdrive")
    synthesize(CONFIG, root, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def nusc(dataroot) -> NuScenes:
    return NuScenes(version=CONFIG.version, dataroot=str(dataroot), verbose=False)


def _gt_file(dataroot: Path, kind: str, sd: dict) -> Path:
    channel = os.path.basename(os.path.dirname(sd["filename"]))
    stem = os.path.splitext(os.path.basename(sd["filename"]))[0]
    return dataroot / "gt" / kind / channel / f"{stem}.png"


def _gt(dataroot: Path, kind: str, sd: dict) -> np.ndarray:
    return np.asarray(Image.open(_gt_file(dataroot, kind, sd))).astype(np.int64)


def test_devkit_opens_the_dataset(nusc, dataroot):
    assert sorted(s["name"] for s in nusc.scene) == [scene_name(i) for i in range(CONFIG.scenes)]
    assert all(s["nbr_samples"] == CONFIG.frames for s in nusc.scene)
    sample = nusc.get("sample", nusc.scene[0]["first_sample_token"])
    assert set(sample["data"]) == {*NUSCENES_CAMERAS, "LIDAR_TOP"}
    cloud = LidarPointCloud.from_file(
        str(dataroot / nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["filename"])
    )
    assert cloud.points.shape[0] == 4 and cloud.points.shape[1] > 100
    assert len(nusc.sample_annotation) > 0 and all(s["description"] for s in nusc.scene)
    for scene in nusc.scene:
        location = nusc.get("log", scene["log_token"])["location"]
        nusc_map = open_map(str(dataroot), location)
        lanes = nusc_map.discretize_lanes([lane["token"] for lane in nusc_map.lane], 1.0)
        assert len(lanes) > 0 and all(len(p) >= 2 for p in lanes.values())
        ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["CAM_FRONT"])["ego_pose_token"])
        if scene["token"] == sample["scene_token"]:
            assert nusc_map.layers_on_point(*ego["translation"][:2], ["drivable_area"])["drivable_area"]
            prior = nusc.get("map", nusc.get("log", scene["log_token"])["map_token"])[
                "mask"
            ]  # devkit MapMask
            assert prior.is_on_mask(*ego["translation"][:2])[0]
            assert not prior.is_on_mask(10.0, 10.0)[0]  # the dataset frame keeps 200 m clear below the map


def test_devkit_boxes_land_on_their_pixels(nusc, dataroot):
    """Each annotation's box, projected by the devkit, covers exactly where the instance image shows it."""
    checked = 0
    for sample in nusc.sample:
        scene = nusc.get("scene", sample["scene_token"])
        for channel in NUSCENES_CAMERAS:
            sd = nusc.get("sample_data", sample["data"][channel])
            instance, depth = _gt(dataroot, "instance", sd), _gt(dataroot, "depth", sd) / DEPTH_SCALE
            _, boxes, k = nusc.get_sample_data(sd["token"], box_vis_level=BoxVisibility.NONE)
            for box in boxes:
                inst_token = nusc.get("sample_annotation", box.token)["instance_token"]
                ids = [
                    i
                    for i in np.unique(instance)
                    if i and token("instance", scene["name"], i - 1) == inst_token
                ]
                if not ids:
                    continue
                rows, cols = np.nonzero(instance == ids[0])
                corners = box.corners()
                assert (corners[2] > 0).all(), "a visible object straddling the camera plane"
                uv = view_points(corners, np.asarray(k), normalize=True)[:2]
                assert cols.min() >= uv[0].min() - 1 and cols.max() + 1 <= uv[0].max() + 1
                assert rows.min() >= uv[1].min() - 1 and rows.max() + 1 <= uv[1].max() + 1
                d = depth[rows, cols]
                assert d.min() >= corners[2].min() - 0.01 and d.max() <= corners[2].max() + 0.01
                checked += 1
    assert checked >= 5


def test_lidar_and_ground_truth_depth_agree(dataroot):
    clips = NuScenesClips(str(dataroot), CONFIG.version, num_frames=CONFIG.frames, height=48, width=84)
    clip = clips[0]
    lidar, gt = clip["lidar_depth"].numpy(), clip["depth"].numpy()
    both = (lidar > 0) & (gt > 0)
    assert both.sum() > 500
    rel = np.abs(lidar[both] - gt[both]) / gt[both]
    assert np.median(rel) < 0.02


def test_clip_shapes_and_boxes_line_up_with_images(dataroot, nusc):
    t, h, w = 2, 40, 96  # a different aspect than the stored images: resize + crop
    clips = NuScenesClips(
        str(dataroot), CONFIG.version, num_frames=t, height=h, width=w, clip_stride=1, nusc=nusc
    )
    assert len(clips) == CONFIG.scenes * (CONFIG.frames - t + 1)
    clip = clips[1]
    v, n = 6, clips.max_boxes
    shapes = {
        "images": (t, v, 3, h, w), "depth": (t, v, 1, h, w), "lidar_depth": (t, v, 1, h, w),
        "sky_mask": (t, v, 1, h, w), "intrinsics": (t, v, 3, 3), "cam_to_ego": (t, v, 4, 4),
        "ego_to_world": (t, 4, 4), "timestamps": (t,), "boxes": (t, n, 7), "box_categories": (t, n),
        "box_ids": (t, n), "map_polylines": (clips.max_polylines, clips.polyline_points, 3),
        "map_types": (clips.max_polylines,),
    }  # fmt: skip
    for key, shape in shapes.items():
        assert tuple(clip[key].shape) == shape, key
    assert clip["images"].min() >= -1 and clip["images"].max() <= 1 and clip["has_sky_mask"] is True
    assert clip["timestamps"][0] == 0 and np.isclose(float(clip["timestamps"][1]), 1 / CONFIG.fps)
    assert isinstance(clip["text"], str) and clip["text"]
    assert {2, 3} <= set(clip["map_types"].tolist()) <= {-1, 0, 1, 2, 3}  # boundaries and lanes always exist
    assert _check_boxes_on_pixels(clips, 1, nusc, dataroot, margin=1.5) >= 3


def _check_boxes_on_pixels(
    clips: NuScenesClips, index: int, nusc: NuScenes, dataroot: Path, margin: float
) -> int:
    """Project a clip's ego-frame boxes with the clip's cameras: each object's pixels in the ground-truth instance
    image (resized like the clip) must fall inside its box's projection. Returns the number of checks."""
    clip = clips[index]
    h, w = clip["images"].shape[-2:]
    scene_tok, frames = clips.clips[index]
    scene = nusc.get("scene", scene_tok)
    checked = 0
    for i, frame in enumerate(frames):
        boxes = clip["boxes"][i][clip["box_ids"][i] >= 0].numpy().astype(np.float64)
        corners = box_corners_3d(boxes)
        world_to_ego = np.linalg.inv(clip["ego_to_world"][i].numpy().astype(np.float64))
        by_instance = {
            nusc.get("sample_annotation", b.token)["instance_token"]: b
            for b in nusc.get_boxes(frame.reference)
        }
        for j, sd_token in enumerate(frame.cameras):
            sd = nusc.get("sample_data", sd_token)
            instance = load_label(str(_gt_file(dataroot, "instance", sd)), (h, w))
            ego_to_cam = np.linalg.inv(clip["cam_to_ego"][i, j].numpy().astype(np.float64))
            k = clip["intrinsics"][i, j].numpy().astype(np.float64)
            for inst in np.unique(instance):
                box = by_instance.get(token("instance", scene["name"], inst - 1)) if inst else None
                if box is None:
                    continue
                centre = world_to_ego[:3, :3] @ box.center + world_to_ego[:3, 3]
                match = np.argmin(np.linalg.norm(boxes[:, :3] - centre, axis=1))
                assert np.linalg.norm(boxes[match, :3] - centre) < 1e-2
                uv = (corners[match] @ ego_to_cam[:3, :3].T + ego_to_cam[:3, 3]) @ k.T
                u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
                rows, cols = np.nonzero(instance == inst)
                assert cols.min() >= u.min() - margin and cols.max() + 1 <= u.max() + margin
                assert rows.min() >= v.min() - margin and rows.max() + 1 <= v.max() + margin
                checked += 1
    return checked


def test_sweeps_between_keyframes_like_nuscenes(tmp_path):
    """Keyframes every 2nd frame, sweeps between: the devkit interpolates boxes, the loader serves both rates."""
    config = SynthConfig(scenes=1, frames=5, height=48, width=84, lidar_azimuth_steps=540, keyframe_every=2)
    synthesize(config, tmp_path, workers=1, progress=False)
    nusc = NuScenes(version=config.version, dataroot=str(tmp_path), verbose=False)
    assert len(nusc.sample) == 3 and len(nusc.sample_data) == 5 * 7
    sweeps = [sd for sd in nusc.sample_data if not sd["is_key_frame"]]
    assert len(sweeps) == 2 * 7 and all(sd["filename"].startswith("sweeps/") for sd in sweeps)
    all_frames = NuScenesClips(str(tmp_path), config.version, num_frames=5, height=48, width=84, nusc=nusc)
    assert len(all_frames) == 1
    assert np.allclose(all_frames[0]["timestamps"].numpy(), np.arange(5) / config.fps)
    assert _check_boxes_on_pixels(all_frames, 0, nusc, tmp_path, margin=2.5) >= 3
    keyframes = NuScenesClips(
        str(tmp_path), config.version, num_frames=3, height=48, width=84, use_sweeps=False, nusc=nusc
    )
    assert np.allclose(keyframes[0]["timestamps"].numpy(), np.arange(3) * 2 / config.fps)


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_files_and_resume_after_kill(tmp_path, dataroot, monkeypatch):
    """A run killed inside scene 1 resumes without touching scene 0 and ends byte-identical to a clean run."""
    original = SceneWriter.add_frame

    def killed(self, index, frame):
        if self.name == scene_name(1) and index == 1:
            raise KeyboardInterrupt
        original(self, index, frame)

    monkeypatch.setattr(SceneWriter, "add_frame", killed)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        synthesize(CONFIG, resumed, workers=1, progress=False)
    before = _snapshot(resumed)
    assert any(scene_name(0) in k for k in before) and not (resumed / CONFIG.version).exists()
    monkeypatch.setattr(SceneWriter, "add_frame", original)
    result = synthesize(CONFIG, resumed, workers=1, progress=False)
    assert (result["rendered"], result["skipped"]) == (1, 1)
    after = _snapshot(resumed)
    for name, (_, mtime) in before.items():
        if scene_name(0) in name:
            assert after[name][1] == mtime, f"{name} was rewritten"
    clean = _snapshot(dataroot)
    assert sorted(after) == sorted(clean)
    assert all(after[k][0] == clean[k][0] for k in clean if not k.endswith("config.json"))
