"""`cvd-sim evaluate`, `cvd-sim demo` and `cvd-sim bench env` end to end at a tiny image size."""

import json

import imageio.v2 as imageio
import pytest

from cvd_sim.cli import main


def _frames(path) -> int:
    return sum(1 for _ in imageio.get_reader(path))


def test_evaluate_writes_table_json_report_and_videos(tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--planner",
            "idm",
            "--planner",
            "constant_velocity",
            "--scenarios",
            "builder:stalled_vehicle",
            "--max-steps",
            "40",
            "--size",
            "16x32",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "copy.json"),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "MEAN" in table and "nuplan_score" in table and "constant_velocity" in table
    data = json.loads((out / "results.json").read_text())
    assert data == json.loads((tmp_path / "copy.json").read_text())
    by = {e["planner"]: e for e in data["episodes"]}
    assert by["idm"]["end"] == "horizon" and by["idm"]["steps"] == 40
    assert by["constant_velocity"]["end"] == "collision"  # drives into the warning cone
    assert data["by_planner"]["idm"]["nuplan_score"] == by["idm"]["scores"]["nuplan_score"]
    for e in data["episodes"]:
        assert _frames(e["video"]) == e["steps"] + 1
    report = (out / "report.md").read_text()
    assert "| stalled_vehicle | idm | 40 | horizon |" in report and (out / "scores.png").exists()


def test_evaluate_rejects_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["evaluate", "--planner", "nope", "--out", str(tmp_path)]) == 2
    assert "--planner" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: x\n")
    assert main(["evaluate", "--scenarios", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert main(["demo", "--steps", "0", "--out", str(tmp_path)]) == 2


def test_demo_writes_video_and_metrics(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--backend", "raycast", "--steps", "5", "--size", "16x32", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 5 and len(metrics["per_step"]) == 5 and metrics["backend"] == "raycast"
    assert metrics["scores"]["route_completion"] == pytest.approx(metrics["per_step"][-1]["route_completion"])
    assert _frames(metrics["video"]) == 6


def test_bench_env_reports_breakdown_and_vector_throughput(tmp_path):
    path = tmp_path / "bench.json"
    assert (
        main(["bench", "env", "--steps", "6", "--size", "16x32", "--envs", "1,2", "--json", str(path)]) == 0
    )
    data = json.loads(path.read_text())
    ms = data["ms_per_step"]
    parts = ms["dynamics"] + ms["traffic"] + ms["metrics"] + ms["sensors"] + ms["env_overhead"]
    assert parts == pytest.approx(ms["total"]) and ms["sensors"] > 0 and ms["metrics"] > 0
    assert set(data["vector_steps_per_s"]) == {"1", "2"}
    assert all(
        v["native"] > 0 and v["sharded"] > 0 and v["sync"] > 0 for v in data["vector_steps_per_s"].values()
    )
