"""`cvd-sim bench env --backend worldmodel`: the breakdown adds up, the paper settings and techniques are run
side by side, throughput and peak memory are reported (figures are not asserted: timing belongs to the bench)."""

from __future__ import annotations

import json

import pytest
from cvd_sim.envs.worldmodel_bench import TECHNIQUES, model_for_bench
from cvd_sim.envs.worldmodel_options import WorldModelOptions
from cvd_sim.envs.worldmodel_random import save_random_world_model

from cvd_sim.cli import main


@pytest.mark.slow
def test_bench_env_worldmodel_reports_breakdown_paper_ratio_and_memory(tmp_path):
    folder = save_random_world_model(tmp_path / "wm", micro=True, distilled=True)
    path = tmp_path / "bench.json"
    args = ["bench", "env", "--backend", "worldmodel", "--model", str(folder), "--size", "32x64"]
    args += ["--steps", "2", "--paper-steps", "1", "--technique-steps", "1", "--envs", "1,2"]
    args += ["--techniques", "distilled one step"]
    assert main([*args, "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    ms = data["ms_per_step"]
    sensor_parts = sum(ms["sensor_" + k] for k in ("conditions", "dit", "decode", "depth"))
    assert 0 < sensor_parts <= ms["sensors"] * 1.001
    parts = ms["dynamics"] + ms["traffic"] + ms["metrics"] + ms["sensors"] + ms["env_overhead"]
    assert parts == pytest.approx(ms["total"])
    assert data["fast_vs_paper"] == pytest.approx(
        data["paper_ms_per_step"]["median_total"] / ms["median_total"]
    )
    assert set(data["vector_steps_per_s"]) == {"1", "2"} and data["peak_rss_mb"] > 100
    assert data["model"] == f"model {folder}, fast defaults: distilled DiT, 1 step"
    assert list(data["techniques"]) == ["distilled one step"]
    assert data["techniques"]["distilled one step"]["on_ms"] > 0


def test_unknown_technique_is_named(capsys):
    args = ["bench", "env", "--backend", "worldmodel", "--techniques", "distilled one step,warp drive"]
    assert main(args) == 2
    assert "--techniques: unknown ['warp drive']" in capsys.readouterr().err


def test_techniques_differ_from_each_other_and_options_are_valid():
    for what, on, off in TECHNIQUES.values():
        assert on != off, what
        WorldModelOptions(**on), WorldModelOptions(**off)
    paper = WorldModelOptions.paper()
    assert (paper.num_steps, paper.guidance_scale, paper.depth) == (50, 3.5, "splat")
    folder, note = model_for_bench("some/folder")
    assert folder == "some/folder" and "some/folder" in note
