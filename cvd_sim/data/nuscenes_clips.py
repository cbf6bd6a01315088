"""`NuScenesClips`: a torch Dataset of multi-camera clips read through nuscenes-devkit.

Works on real nuScenes (keyframes + 12 Hz camera sweeps, boxes interpolated by the devkit) and on SynthDrive
(every frame a keyframe, plus ground-truth depth and sky under `gt/`). Each item is the clip dict of
DESIGN / the shared contract: images [T, V, 3, H, W] in [-1, 1], depth, lidar_depth, sky_mask [T, V, 1, H, W],
intrinsics [T, V, 3, 3], cam_to_ego [T, V, 4, 4], ego_to_world [T, 4, 4], timestamps [T], boxes [T, N, 7] ego,
box_categories / box_ids [T, N], map_polylines [M, P, 3] world, map_types [M], text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from pyquaternion import Quaternion

from cvd_sim.data.image_ops import load_label, load_rgb
from cvd_sim.data.lidar_projection import project_depth
from cvd_sim.data.map_polylines import map_polylines, open_map
from cvd_sim.data.nuscenes_constants import LIDAR_CHANNEL, detection_category
from cvd_sim.data.nuscenes_writer import DEPTH_SCALE
from cvd_sim.geometry.camera import NUSCENES_CAMERAS, resize_crop_intrinsics
from cvd_sim.geometry.transforms import apply_transform, invert_pose
from cvd_sim.sensors.materials import SKY_ID


def _pose(record: dict) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Quaternion(record["rotation"]).rotation_matrix
    pose[:3, 3] = record["translation"]
    return pose


@dataclass(frozen=True)
class _Frame:
    reference: str  # sample_data token of the reference camera
    cameras: tuple[str, ...]  # sample_data token per camera
    lidar: str  # nearest LIDAR_TOP sample_data token


class NuScenesClips(torch.utils.data.Dataset):
    """Clips of `num_frames` frames (every `frame_step`-th camera frame), one every `clip_stride` frames.

    dataroot/version: a nuScenes-layout folder; height/width: output image size (resize to cover + centre crop,
    K adjusted); use_sweeps: include non-keyframe camera frames (real nuScenes, 12 Hz); max_boxes N,
    max_polylines M, polyline_points P: fixed padding sizes; map_margin: metres of map around the clip's path.
    """

    def __init__(
        self,
        dataroot: str,
        version: str = "v1.0-trainval",
        num_frames: int = 8,
        height: int = 256,
        width: int = 448,
        cameras: tuple[str, ...] = NUSCENES_CAMERAS,
        frame_step: int = 1,
        clip_stride: int | None = None,
        use_sweeps: bool = True,
        max_boxes: int = 64,
        max_polylines: int = 128,
        polyline_points: int = 20,
        map_margin: float = 50.0,
        scenes: list[str] | None = None,
        nusc: NuScenes | None = None,
    ):
        self.nusc = nusc or NuScenes(version=version, dataroot=dataroot, verbose=False)
        self.dataroot = dataroot
        self.num_frames, self.hw, self.cameras = num_frames, (height, width), tuple(cameras)
        self.max_boxes, self.max_polylines, self.polyline_points = max_boxes, max_polylines, polyline_points
        self.map_margin = map_margin
        stride = clip_stride or num_frames
        self.clips: list[tuple[str, list[_Frame]]] = []
        for scene in sorted(self.nusc.scene, key=lambda s: s["name"]):
            if scenes is not None and scene["name"] not in scenes:
                continue
            frames = self._scene_frames(scene, use_sweeps)[::frame_step]
            for start in range(0, len(frames) - num_frames + 1, stride):
                self.clips.append((scene["token"], frames[start : start + num_frames]))

    def _channel_chain(self, first_sample: dict, channel: str, use_sweeps: bool) -> list[dict]:
        sd = self.nusc.get("sample_data", first_sample["data"][channel])
        chain = []
        while True:
            if use_sweeps or sd["is_key_frame"]:
                chain.append(sd)
            if not sd["next"]:
                return chain
            sd = self.nusc.get("sample_data", sd["next"])

    def _scene_frames(self, scene: dict, use_sweeps: bool) -> list[_Frame]:
        first = self.nusc.get("sample", scene["first_sample_token"])
        chains = {c: self._channel_chain(first, c, use_sweeps) for c in (*self.cameras, LIDAR_CHANNEL)}
        stamps = {c: np.array([sd["timestamp"] for sd in chain]) for c, chain in chains.items()}

        def nearest(channel: str, t: int) -> str:
            return chains[channel][int(np.argmin(np.abs(stamps[channel] - t)))]["token"]

        reference = "CAM_FRONT" if "CAM_FRONT" in self.cameras else self.cameras[0]  # sets the clip's clock
        return [
            _Frame(
                sd["token"],
                tuple(nearest(c, sd["timestamp"]) for c in self.cameras),
                nearest(LIDAR_CHANNEL, sd["timestamp"]),
            )
            for sd in chains[reference]
        ]

    def __len__(self) -> int:
        return len(self.clips)

    def _boxes(self, reference_sd: dict, world_to_ego: np.ndarray, instance_index: dict):
        """Boxes [N, 7] ego, categories [N], ids [N] at the reference camera's time (devkit-interpolated)."""
        out = np.zeros((self.max_boxes, 7), np.float32)
        cats = np.full(self.max_boxes, -1, np.int64)
        ids = np.full(self.max_boxes, -1, np.int64)
        rows = []
        for b in self.nusc.get_boxes(reference_sd["token"]):
            cat = detection_category(b.name)
            if cat is None:
                continue
            centre = apply_transform(world_to_ego, np.asarray(b.center)[None])[0]
            forward = world_to_ego[:3, :3] @ b.orientation.rotation_matrix[:, 0]
            yaw = np.arctan2(forward[1], forward[0])
            w, length, h = b.wlh
            inst = self.nusc.get("sample_annotation", b.token)["instance_token"]
            rows.append((np.hypot(centre[0], centre[1]), [*centre, length, w, h, yaw], cat, inst))
        rows.sort(key=lambda r: r[0])
        for k, (_, box, cat, inst) in enumerate(rows[: self.max_boxes]):
            out[k], cats[k] = box, cat
            ids[k] = instance_index.setdefault(inst, len(instance_index))
        return out, cats, ids

    def __getitem__(self, index: int) -> dict:
        scene_token, frames = self.clips[index]
        scene = self.nusc.get("scene", scene_token)
        h, w = self.hw
        t, v = self.num_frames, len(self.cameras)
        images = np.zeros((t, v, 3, h, w), np.float32)
        depth = np.zeros((t, v, 1, h, w), np.float32)
        lidar_depth = np.zeros((t, v, 1, h, w), np.float32)
        sky = np.zeros((t, v, 1, h, w), np.float32)
        intrinsics = np.zeros((t, v, 3, 3), np.float32)
        cam_to_ego = np.zeros((t, v, 4, 4), np.float32)
        ego_to_world = np.zeros((t, 4, 4), np.float32)
        stamps = np.zeros(t, np.float64)
        boxes = np.zeros((t, self.max_boxes, 7), np.float32)
        box_cats = np.full((t, self.max_boxes), -1, np.int64)
        box_ids = np.full((t, self.max_boxes), -1, np.int64)
        has_sky = True
        instance_index: dict[str, int] = {}
        for i, frame in enumerate(frames):
            ref = self.nusc.get("sample_data", frame.reference)
            ref_ego = _pose(self.nusc.get("ego_pose", ref["ego_pose_token"]))
            ego_to_world[i] = ref_ego
            stamps[i] = ref["timestamp"]
            world_to_ref = invert_pose(ref_ego)
            boxes[i], box_cats[i], box_ids[i] = self._boxes(ref, world_to_ref, instance_index)
            lidar_sd = self.nusc.get("sample_data", frame.lidar)
            lidar_to_world = _pose(self.nusc.get("ego_pose", lidar_sd["ego_pose_token"])) @ _pose(
                self.nusc.get("calibrated_sensor", lidar_sd["calibrated_sensor_token"])
            )
            cloud = LidarPointCloud.from_file(os.path.join(self.dataroot, lidar_sd["filename"])).points[:3].T
            sensor_to_cam = np.zeros((v, 4, 4))
            has_gt = np.zeros(v, bool)
            for j, token in enumerate(frame.cameras):
                sd = self.nusc.get("sample_data", token)
                calib = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
                cam_ego = _pose(self.nusc.get("ego_pose", sd["ego_pose_token"]))
                # Fold the camera's own capture-time ego pose into cam_to_ego, so ego_to_world @ cam_to_ego is exact.
                c2e = world_to_ref @ cam_ego @ _pose(calib)
                k = resize_crop_intrinsics(
                    np.asarray(calib["camera_intrinsic"]), (sd["height"], sd["width"]), (h, w)
                )
                intrinsics[i, j], cam_to_ego[i, j] = k, c2e
                sensor_to_cam[j] = invert_pose(ref_ego @ c2e) @ lidar_to_world
                images[i, j] = load_rgb(os.path.join(self.dataroot, sd["filename"]), (h, w))
                gt = self._gt_path("depth", sd)
                if os.path.exists(gt):
                    depth[i, j, 0], has_gt[j] = load_label(gt, (h, w)) / DEPTH_SCALE, True
                sem = self._gt_path("semantic", sd)
                if os.path.exists(sem):
                    sky[i, j, 0] = load_label(sem, (h, w)) == SKY_ID
                else:
                    has_sky = False
            # One product moves the sweep into all V cameras: [N, 3] @ [3, V * 3].
            rot_t = np.concatenate(list(np.swapaxes(sensor_to_cam[:, :3, :3], 1, 2)), axis=1)
            points_cam = (cloud @ rot_t).reshape(len(cloud), v, 3) + sensor_to_cam[None, :, :3, 3]
            for j in range(v):
                lidar_depth[i, j, 0] = project_depth(
                    points_cam[:, j], intrinsics[i, j].astype(np.float64), h, w
                )
                if not has_gt[j]:
                    depth[i, j, 0] = lidar_depth[i, j, 0]
        if not has_sky:
            sky[:] = 0.0
        centres = ego_to_world[:, :2, 3]
        patch = (*(centres.min(0) - self.map_margin), *(centres.max(0) + self.map_margin))
        location = self.nusc.get("log", scene["log_token"])["location"]
        polylines, map_types = map_polylines(
            open_map(self.dataroot, location),
            tuple(float(p) for p in patch),
            self.max_polylines,
            self.polyline_points,
        )
        return {
            "images": torch.from_numpy(images),
            "depth": torch.from_numpy(depth.astype(np.float32)),
            "lidar_depth": torch.from_numpy(lidar_depth),
            "sky_mask": torch.from_numpy(sky),
            "has_sky_mask": has_sky,
            "intrinsics": torch.from_numpy(intrinsics),
            "cam_to_ego": torch.from_numpy(cam_to_ego),
            "ego_to_world": torch.from_numpy(ego_to_world),
            "timestamps": torch.from_numpy((stamps - stamps[0]) / 1e6),
            "boxes": torch.from_numpy(boxes),
            "box_categories": torch.from_numpy(box_cats),
            "box_ids": torch.from_numpy(box_ids),
            "map_polylines": torch.from_numpy(polylines),
            "map_types": torch.from_numpy(map_types),
            "text": scene["description"],
        }

    def _gt_path(self, kind: str, sd: dict) -> str:
        """SynthDrive ground truth beside a camera image: gt/<kind>/<CHANNEL>/<stem>.png."""
        channel = os.path.basename(os.path.dirname(sd["filename"]))
        stem = os.path.splitext(os.path.basename(sd["filename"]))[0]
        return os.path.join(self.dataroot, "gt", kind, channel, stem + ".png")
