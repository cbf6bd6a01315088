"""`cvd-sim scenario ...`: exit codes, one line per problem, files written and readable by real libraries."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import yaml
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.library import library_path, library_paths
from PIL import Image

from cvd_sim.cli import main


def test_validate_library_ok(capsys, tmp_path):
    files = [str(p) for p in library_paths()]
    assert main(["scenario", "validate", *files, "--json", str(tmp_path / "v.json")]) == 0
    report = json.loads((tmp_path / "v.json").read_text())
    assert len(report) == len(files) and not any(report.values())


def test_validate_reports_one_line_per_problem(capsys, tmp_path):
    data = yaml.safe_load(library_path("cut_in_left").read_text())
    data["agents"][0]["speed"] = -3
    data["ego"]["route"] = ["f0", "zz"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    good = library_path("merge")
    assert main(["scenario", "validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}: agents.0.speed: Input should be greater than or equal to 0"]
    data["agents"][0]["speed"] = 3
    bad.write_text(yaml.safe_dump(data))
    assert main(["scenario", "validate", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}: ego.route.1: unknown lane 'zz'"


def test_bad_file_gives_exit_2_without_traceback(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: [\n")
    assert main(["scenario", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"cvd-sim: error: {bad}: <root>: invalid YAML")


def test_list_and_show(capsys, tmp_path):
    assert main(["scenario", "list", "--json", str(tmp_path / "l.json")]) == 0
    listing = json.loads((tmp_path / "l.json").read_text())
    assert {r["name"] for r in listing["library"]} == {p.stem for p in library_paths()}
    assert "cut_in" in listing["builders"] and "gap" in listing["builders"]["cut_in"]
    assert main(["scenario", "show", str(library_path("jaywalker")), "--json", str(tmp_path / "s.json")]) == 0
    shown = json.loads((tmp_path / "s.json").read_text())
    assert [a["id"] for a in shown["agents"]] == ["parked", "jaywalker"] and shown["map"]["lanes"] == 3


def test_new_and_sweep(capsys, tmp_path):
    out = tmp_path / "c.yaml"
    assert main(["scenario", "new", "cut_in", "-p", "gap=5", "-p", "side=right", "-o", str(out)]) == 0
    sc = load_scenario(out)
    assert sc.name == "cut_in_right" and "5 m gap" in sc.description
    assert (
        main(
            [
                "scenario",
                "new",
                "lead_vehicle_brake",
                "--sweep",
                "deceleration=4,8",
                "--sweep",
                "time_gap=1,2",
                "-o",
                str(tmp_path / "sw"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "sw").glob("*.yaml"))) == 4
    assert main(["scenario", "new", "cut_in", "-p", "colour=red", "-o", str(out)]) == 2
    assert "colour: unknown parameter" in capsys.readouterr().err
    assert main(["scenario", "new", "cut_in", "-p", "side=up", "-o", str(out)]) == 2


def test_edit_in_place_and_refused_edit(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(library_path("stalled_vehicle").read_bytes())
    assert main(["scenario", "edit", str(path), "add_agent", "id=bike", "category=bicycle", "lane=f1", "s=90", "speed=4",
                 "behavior={type: idm, route: [f1]}"]) == 0  # fmt: skip
    assert load_scenario(path).agent("bike").behavior.type == "idm"
    assert main(["scenario", "edit", str(path), "move_agent", "id=bike", "x=90", "y=400"]) == 2
    assert "s.yaml: agents.2.pose: agent 'bike' starts off the map" in capsys.readouterr().err
    assert load_scenario(path).agent("bike").pose.y == pytest.approx(-1.75)
    assert main(["scenario", "edit", str(path), "rotate_agent", "id=bike", "angle=3"]) == 2
    other = library_path("plain_dusk_t_junction")
    assert (
        main(
            [
                "scenario",
                "edit",
                str(path),
                "merge_map",
                f"other={other}",
                "prefix=tj_",
                "-o",
                str(tmp_path / "m.yaml"),
            ]
        )
        == 0
    )
    assert len(load_scenario(tmp_path / "m.yaml").map.lanes) == 3 + len(load_scenario(other).map.lanes)


def test_plot_writes_an_image(capsys, tmp_path):
    out = tmp_path / "bev.png"
    assert (
        main(["scenario", "plot", str(library_path("unprotected_left_turn")), "-o", str(out), "--dpi", "60"])
        == 0
    )
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] > 200 and img.shape[1] > 200
    ego_green = np.all(np.abs(img.astype(int) - [0, 166, 81]) < 30, axis=-1)
    assert ego_green.sum() > 20  # the ego and its route are drawn
    assert (
        main(["scenario", "plot", str(library_path("merge")), "-o", str(tmp_path / "x.unknownformat")]) == 2
    )


def test_convert_both_ways(capsys, tmp_path):
    pkl = tmp_path / "sd_merge.pkl"
    assert main(["scenario", "convert", str(library_path("merge")), str(pkl)]) == 0
    with open(pkl, "rb") as fh:
        raw = pickle.load(fh)
    assert raw["metadata"]["sdc_id"] == "ego" and len(raw["tracks"]) == 5
    back = tmp_path / "merge.yaml"
    assert main(["scenario", "convert", str(pkl), str(back)]) == 0
    assert load_scenario(back) == load_scenario(library_path("merge"))
    assert main(["scenario", "convert", str(back), str(tmp_path / "x.yaml")]) == 2
