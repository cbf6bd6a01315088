"""`cvd-sim demo --backend worldmodel --model FOLDER`: side-by-side video (generated | truth | depth | BEV)
and per-step fidelity in the metrics JSON."""

from __future__ import annotations

import json

import imageio
import numpy as np
from cvd_sim.envs.worldmodel_options import SHIPPED_MODEL
from cvd_sim.envs.worldmodel_random import save_random_world_model

from cvd_sim.cli import main

GREY_FRAME_PSNR = (
    17.0  # a uniform mid-grey frame against SynthDrive val views scores 12.5-16.9 dB (mean 14.6)
)


def test_worldmodel_demo_writes_side_by_side_video_and_fidelity(tmp_path):
    folder = save_random_world_model(tmp_path / "wm", micro=True)
    out = tmp_path / "demo"
    args = ["demo", "--backend", "worldmodel", "--model", str(folder), "--steps", "2", "--size", "32x64"]
    assert main([*args, "--num-steps", "1", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "worldmodel" and metrics["steps"] == 2
    for key in ("psnr", "ssim", "abs_rel", "delta1"):
        assert np.isfinite(metrics["fidelity"][key])
        assert metrics["fidelity"][key] == np.mean([s[key] for s in metrics["per_step"]])
    reader = imageio.get_reader(metrics["video"])
    assert sum(1 for _ in reader) == 3
    first = reader.get_data(0)
    # four panels in one row: three 2x3 ring mosaics of 64-pixel-wide views, then a square BEV as tall as them
    assert first.shape[1] >= 3 * 3 * 64 + first.shape[0] - 16
    assert main([*args, "--num-steps", "0", "--out", str(out)]) == 2
    assert main(["demo", "--backend", "worldmodel", "--model", str(tmp_path / "none"), "--steps", "1"]) == 2


def test_default_demo_drives_the_shipped_world_model(tmp_path):
    """`cvd-sim demo` with no backend or model: the shipped tiny checkpoint at its training resolution, and the
    generated views resemble the ray-cast ground truth more than a blank grey frame does."""
    assert (SHIPPED_MODEL / "dit" / "config.json").is_file(), (
        "the tiny checkpoint must ship in the repository"
    )
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "worldmodel" and metrics["image_size"] == [64, 112]
    assert metrics["fidelity"]["psnr"] > GREY_FRAME_PSNR
