"""`cvd-sim data synth` on the command line: bad input is one line and exit 2; a run writes its figures."""

from __future__ import annotations

import json

import pytest

from cvd_sim.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "64by112"], "--size: expected HxW"),
        (["--size", "0x112"], "--size: height and width must be positive"),
        (["--scenes", "0"], "--scenes: must be positive"),
        (["--frames", "-2"], "--frames: must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["data", "synth", "--out", str(tmp_path / "ds"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_synth_writes_tables_and_json_and_refuses_other_settings(tmp_path, capsys):
    out, figures = tmp_path / "ds", tmp_path / "figures.json"
    args = ["data", "synth", "--out", str(out), "--scenes", "1", "--frames", "2", "--size", "24x40"]
    assert main([*args, "--json", str(figures)]) == 0
    data = json.loads(figures.read_text())
    assert (data["scenes"], data["rendered"], data["frames_rendered"]) == (1, 1, 2)
    assert len(json.loads((out / "v1.0-trainval" / "sample.json").read_text())) == 2
    assert main([*args[:-1], "32x40"]) == 2
    assert "different settings (height)" in capsys.readouterr().err
