"""Fidelity scoring: metrics against hand-computed values, the same trajectory through two backends, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cvd_sim.agents.fidelity import depth_scores, drift_slope, image_scores, run_fidelity
from cvd_sim.agents.idm_lane_follower import IDMLaneFollower
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.envs.raycast_backend import RaycastBackend
from cvd_sim.envs.worldmodel_random import save_random_world_model

from cvd_sim.cli import main


def test_image_scores_match_hand_computed_psnr_and_ssim():
    truth = np.zeros((2, 16, 16, 3), np.uint8)
    psnr = image_scores(truth + 10, truth)[0]
    assert psnr == pytest.approx(-10 * math.log10((10 / 255) ** 2), rel=1e-6)
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert image_scores(views, views)[1] == pytest.approx(1.0)
    assert image_scores(255 - views, views)[1] < 0.0  # anti-correlated


def test_depth_scores_use_known_pixels_only():
    truth = np.array([[[10.0, 20.0, 0.0, 40.0]]])
    pred = np.array([[[11.0, 30.0, 5.0, 0.0]]])  # pixel 3 unknown in truth, pixel 4 unknown in prediction
    abs_rel, delta1 = depth_scores(pred, truth)
    assert abs_rel == pytest.approx((0.1 + 0.5) / 2) and delta1 == pytest.approx(0.5)
    assert all(math.isnan(v) for v in depth_scores(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))))


def test_drift_slope_is_the_least_squares_slope():
    assert drift_slope([3.0, 2.5, 2.0, float("nan"), 1.0]) == pytest.approx(-0.5)
    assert drift_slope([1.0]) == 0.0


def test_ground_truth_scored_against_itself_is_perfect():
    env = DrivingEnv(image_height=16, image_width=32, cameras=["CAM_FRONT", "CAM_BACK"])
    traces = run_fidelity(env, IDMLaneFollower(), {"raycast": lambda rig: RaycastBackend(rig, 1)}, 3)
    trace = traces["raycast"]
    assert len(trace.per_step["psnr"]) == 3 and all(math.isinf(v) for v in trace.per_step["psnr"])
    assert trace.per_step["ssim"] == pytest.approx([1.0] * 3)
    assert trace.per_step["abs_rel"] == [0.0] * 3 and trace.per_step["delta1"] == [1.0] * 3


def test_evaluate_fidelity_cli_writes_scores_and_plot(tmp_path):
    folder = save_random_world_model(tmp_path / "wm", micro=True)
    out = tmp_path / "fid"
    args = ["evaluate", "--fidelity", "--model", str(folder), "--fidelity-steps", "2", "--size", "32x64"]
    assert main([*args, "--settings", "fast", "--out", str(out)]) == 0
    data = json.loads((out / "fidelity.json").read_text())
    assert data["steps"] == 2 and set(data["summary"]) == {"fast"}
    assert len(data["per_step"]["fast"]["psnr"]) == 2 and 0 < data["summary"]["fast"]["psnr"] < 60
    assert (out / "fidelity_drift.png").stat().st_size > 1000
    assert main([*args, "--settings", "best", "--out", str(out)]) == 2


def test_evaluate_fidelity_option_overrides_the_fast_settings(tmp_path, capsys):
    folder = save_random_world_model(tmp_path / "wm", micro=True)
    out = tmp_path / "fid"
    args = ["evaluate", "--fidelity", "--model", str(folder), "--fidelity-steps", "1", "--size", "32x64"]
    args += ["--settings", "fast", "--out", str(out)]
    assert main([*args, "--option", "num_steps=2", "--option", "shift=none"]) == 0
    options = json.loads((out / "fidelity.json").read_text())["fast_options"]
    assert options["num_steps"] == 2 and options["shift"] is None and options["depth_context"] == 2
    assert "distilled=False, num_steps=2, shift=None" in capsys.readouterr().out
    assert main([*args, "--option", "distilled=true"]) == 2  # this folder has no dit_distilled/
    assert "dit_distilled" in capsys.readouterr().err
    assert main([*args, "--option", "num_steps=zero"]) == 2
    assert "--option num_steps" in capsys.readouterr().err
    assert main([*args, "--option", "bogus=1"]) == 2
    assert "KEY one of" in capsys.readouterr().err
