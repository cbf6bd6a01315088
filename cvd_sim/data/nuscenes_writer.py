"""Writes SynthDrive scenes in the nuScenes v1.0 layout, one scene at a time, resumable.

Per scene: `samples/CAM_*/*.jpg`, `samples/LIDAR_TOP/*.pcd.bin`, ground truth under `gt/{depth,semantic,instance}/`
(16-bit PNG: depth in 1/256 m, semantic ids, instance id + 1), the map expansion `maps/expansion/<location>.json`
and a `maps/<token>.png` drivable-area prior, and the scene's table records in `.synthdrive/parts/<scene>.json`
(written last, atomically: its presence marks the scene finished). `merge_tables` joins all parts into
`<version>/*.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pyquaternion import Quaternion

from cvd_sim.data.frame_record import FrameRecord
from cvd_sim.data.map_expansion import map_expansion
from cvd_sim.data.nuscenes_constants import (
    LIDAR_CHANNEL,
    attribute_for,
    attribute_token,
    category_token,
    sensor_token,
    static_tables,
)
from cvd_sim.data.tokens import token
from cvd_sim.data.visibility import projected_area, visibility_level
from cvd_sim.geometry.boxes import box_corners_3d
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.sensors.lidar import lidar_to_ego
from cvd_sim.sensors.map_geometry import MapGeometry

TABLES = (
    "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor", "log", "map",
    "sample_annotation", "instance", "category", "attribute", "visibility",
)  # fmt: skip
PARTS_DIR = Path(".synthdrive") / "parts"
DEPTH_SCALE = 256.0  # PNG value / DEPTH_SCALE = metres
JPEG_QUALITY = 95
PRIOR_PX_PER_M = 10.0  # nuScenes semantic priors are 0.1 m per pixel (devkit MapMask)


def _quat(rotation: np.ndarray) -> list[float]:
    return [float(v) for v in Quaternion(matrix=rotation, rtol=1e-6, atol=1e-6).elements]


def _pose_record(tok: str, pose: np.ndarray, **extra) -> dict:
    return {
        "token": tok,
        **extra,
        "rotation": _quat(pose[:3, :3]),
        "translation": [float(v) for v in pose[:3, 3]],
    }


def _atomic_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def scene_done(dataroot: str | Path, scene_name: str) -> bool:
    return (Path(dataroot) / PARTS_DIR / f"{scene_name}.json").exists()


class SceneWriter:
    """Writes one scene frame by frame; `finish` records its tables. Timestamps start at `start_us`."""

    def __init__(
        self,
        dataroot: str | Path,
        scene_name: str,
        rig: CameraRig,
        text: str,
        start_us: int,
        keyframe_every: int = 1,
        date: str = "2026-01-01",
    ):
        self.root = Path(dataroot)
        self.keyframe_every = keyframe_every
        self._sweeps_waiting: list[dict] = []  # sweep sample_data records until their keyframe is written
        self.name = scene_name
        self.rig = rig
        self.text = text
        self.start_us = int(start_us)
        self.location = f"synthdrive-{scene_name}"
        self.log_token = token("log", scene_name)
        self.date = date
        self.records: dict[str, list[dict]] = {t: [] for t in TABLES}
        self._annotations: dict[int, list[dict]] = {}
        self._categories: dict[int, int] = {}
        self._last_sd: dict[str, dict] = {}
        self._calib = {c: token("calibrated_sensor", scene_name, c) for c in (*rig.names, LIDAR_CHANNEL)}
        for v, name in enumerate(rig.names):
            self.records["calibrated_sensor"].append(
                _pose_record(self._calib[name], rig.cam_to_ego[v], sensor_token=sensor_token(name))
                | {"camera_intrinsic": rig.intrinsics[v].tolist()}
            )
        self.records["calibrated_sensor"].append(
            _pose_record(self._calib[LIDAR_CHANNEL], lidar_to_ego(), sensor_token=sensor_token(LIDAR_CHANNEL))
            | {"camera_intrinsic": []}
        )

    def _file(self, kind: str, channel: str, stamp: int, ext: str) -> str:
        return f"{kind}/{channel}/{self.name}__{channel}__{stamp}{ext}"

    def _save(self, rel: str, write) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)

    def add_frame(self, index: int, frame: FrameRecord) -> None:
        """Writes the files of frame `index` and keeps its table records.

        Every `keyframe_every`-th frame (from 0) is a keyframe: a sample with annotations, files under
        `samples/`. The frames between are sweeps (`sweeps/`, is_key_frame false) that belong, as in nuScenes,
        to the next keyframe's sample.
        """
        stamp = self.start_us + round(frame.time * 1e6)
        key = index % self.keyframe_every == 0
        folder = "samples" if key else "sweeps"
        sample_tok = token("sample", self.name, index) if key else ""
        pose_tok = token("ego_pose", self.name, index)
        self.records["ego_pose"].append(_pose_record(pose_tok, frame.ego_to_world, timestamp=stamp))
        if key:
            prev = self.records["sample"][-1] if self.records["sample"] else None
            self.records["sample"].append(
                {"token": sample_tok, "timestamp": stamp, "prev": prev["token"] if prev else "", "next": "",
                 "scene_token": token("scene", self.name)}
            )  # fmt: skip
            if prev:
                prev["next"] = sample_tok
            for record in self._sweeps_waiting:
                record["sample_token"] = sample_tok
            self._sweeps_waiting = []
        cams = frame.cameras
        h, w = self.rig.height, self.rig.width
        for v, channel in enumerate(self.rig.names):
            rel = self._file(folder, channel, stamp, ".jpg")
            self._save(rel, lambda p, v=v: Image.fromarray(cams.rgb[v]).save(p, quality=JPEG_QUALITY))
            depth = np.clip(np.round(cams.depth[v] * DEPTH_SCALE), 0, 65535).astype(np.uint16)
            self._save(
                self._file("gt/depth", channel, stamp, ".png"), lambda p, d=depth: Image.fromarray(d).save(p)
            )
            self._save(
                self._file("gt/semantic", channel, stamp, ".png"),
                lambda p, v=v: Image.fromarray(cams.semantic[v]).save(p),
            )
            inst = (cams.instance[v] + 1).astype(np.uint16)
            self._save(
                self._file("gt/instance", channel, stamp, ".png"),
                lambda p, i=inst: Image.fromarray(i).save(p),
            )
            self._sample_data(channel, sample_tok, pose_tok, stamp, rel, "jpg", h, w)
        rel = self._file(folder, LIDAR_CHANNEL, stamp, ".pcd.bin")
        self._save(rel, lambda p: np.ascontiguousarray(frame.lidar, np.float32).tofile(p))
        self._sample_data(LIDAR_CHANNEL, sample_tok, pose_tok, stamp, rel, "pcd", 0, 0)
        if key:
            self._annotate(sample_tok, frame)

    def _sample_data(self, channel, sample_tok, pose_tok, stamp, rel, fmt, h, w) -> None:
        tok = token("sample_data", self.name, channel, stamp)
        prev = self._last_sd.get(channel)
        record = {
            "token": tok, "sample_token": sample_tok, "ego_pose_token": pose_tok,
            "calibrated_sensor_token": self._calib[channel], "timestamp": stamp, "fileformat": fmt,
            "is_key_frame": bool(sample_tok), "height": h, "width": w, "filename": rel,
            "prev": prev["token"] if prev else "", "next": "",
        }  # fmt: skip
        if prev:
            prev["next"] = tok
        self._last_sd[channel] = record
        self.records["sample_data"].append(record)
        if not sample_tok:
            self._sweeps_waiting.append(record)

    def _annotate(self, sample_tok: str, frame: FrameRecord) -> None:
        """One sample_annotation per road user seen by a camera or hit by the LiDAR."""
        if not len(frame.boxes):
            return
        boxes = np.asarray(frame.boxes, np.float64)
        ids = np.asarray(frame.instance_ids, np.int64)
        pixels = np.array([(frame.cameras.instance == i).sum() for i in ids])
        lidar_pts = np.array([(frame.lidar_instance == i).sum() for i in ids])
        cam_to_world = frame.ego_to_world @ self.rig.cam_to_ego
        area = projected_area(
            box_corners_3d(boxes), self.rig.intrinsics, cam_to_world, self.rig.height, self.rig.width
        )
        levels = visibility_level(pixels, area)
        for k, inst in enumerate(ids):
            if pixels[k] == 0 and lidar_pts[k] == 0:
                continue
            cat = int(frame.categories[k])
            self._categories[int(inst)] = cat
            chain = self._annotations.setdefault(int(inst), [])
            x, y, z, length, width, height, yaw = boxes[k]
            attr = attribute_for(cat, float(frame.speeds[k]))
            record = {
                "token": token("sample_annotation", self.name, sample_tok, int(inst)),
                "sample_token": sample_tok,
                "instance_token": token("instance", self.name, int(inst)),
                "visibility_token": str(levels[k]),
                "attribute_tokens": [attribute_token(attr)] if attr else [],
                "translation": [float(x), float(y), float(z)],
                "size": [float(width), float(length), float(height)],
                "rotation": [float(v) for v in Quaternion(axis=(0, 0, 1), angle=float(yaw)).elements],
                "prev": chain[-1]["token"] if chain else "",
                "next": "",
                "num_lidar_pts": int(lidar_pts[k]),
                "num_radar_pts": 0,
            }
            if chain:
                chain[-1]["next"] = record["token"]
            chain.append(record)
            self.records["sample_annotation"].append(record)

    def finish(self, map_geometry: MapGeometry) -> None:
        """Writes the map files and the scene's table part (marks the scene finished)."""
        samples = self.records["sample"]
        for record in self._sweeps_waiting:  # sweeps after the last keyframe belong to it
            record["sample_token"] = samples[-1]["token"]
        scene_tok = token("scene", self.name)
        self.records["scene"].append(
            {"token": scene_tok, "log_token": self.log_token, "nbr_samples": len(samples),
             "first_sample_token": samples[0]["token"], "last_sample_token": samples[-1]["token"],
             "name": self.name, "description": self.text}
        )  # fmt: skip
        self.records["log"].append(
            {"token": self.log_token, "logfile": self.name, "vehicle": "synthdrive", "date_captured": self.date,
             "location": self.location}
        )  # fmt: skip
        map_tok = token("map", self.location)
        prior = f"maps/{map_tok}.png"
        self.records["map"].append(
            {
                "token": map_tok,
                "log_tokens": [self.log_token],
                "category": "semantic_prior",
                "filename": prior,
            }
        )
        for inst, chain in sorted(self._annotations.items()):
            self.records["instance"].append(
                {"token": token("instance", self.name, inst), "category_token": category_token(self._categories[inst]),
                 "nbr_annotations": len(chain), "first_annotation_token": chain[0]["token"],
                 "last_annotation_token": chain[-1]["token"]}
            )  # fmt: skip
        expansion = map_expansion(map_geometry, self.location)
        _atomic_json(self.root / "maps" / "expansion" / f"{self.location}.json", expansion)
        self._save(prior, lambda p: _prior_image(map_geometry, expansion["canvas_edge"]).save(p))
        _atomic_json(self.root / PARTS_DIR / f"{self.name}.json", self.records)


def _prior_image(geom: MapGeometry, canvas_edge) -> Image.Image:
    """Drivable-area mask (255 = drivable), PRIOR_PX_PER_M pixels per metre, north up (row 0 at the canvas top),
    as the devkit's MapMask reads it."""
    w, h = (int(np.ceil(v * PRIOR_PX_PER_M)) for v in canvas_edge)
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)

    def pixels(coords) -> list[tuple[float, float]]:
        xy = np.asarray(coords)[:, :2] * PRIOR_PX_PER_M
        return [(x, h - y) for x, y in xy]

    for part in getattr(geom.drivable_area, "geoms", [geom.drivable_area]):
        draw.polygon(pixels(part.exterior.coords), fill=255)
        for hole in part.interiors:
            draw.polygon(pixels(hole.coords), fill=0)
    return image


def merge_tables(dataroot: str | Path, version: str = "v1.0-trainval") -> int:
    """Joins every finished scene's part into `<dataroot>/<version>/*.json`; returns the number of scenes."""
    root = Path(dataroot)
    tables = {t: [] for t in TABLES} | static_tables()
    parts = sorted((root / PARTS_DIR).glob("*.json"))
    for part in parts:
        for name, records in json.loads(part.read_text()).items():
            tables[name].extend(records)
    for name, records in tables.items():
        _atomic_json(root / version / f"{name}.json", records)
    return len(parts)
