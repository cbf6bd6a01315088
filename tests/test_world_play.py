"""`cvd-sim scenario play`: writes an animation with BEV + layout panels and the episode scores."""

from __future__ import annotations

import argparse
import json

import imageio.v2 as imageio
import numpy as np
import pytest
from cvd_sim.scenarios.library import library_paths

from cvd_sim.cli import UserError
from cvd_sim.cli.scenario_play_args import add_play_parser


def parse(argv):
    parser = argparse.ArgumentParser()
    add_play_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_play_writes_frames_and_scores(tmp_path):
    path = library_paths()[0]
    out, scores = tmp_path / "play.gif", tmp_path / "scores.json"
    args = parse(
        [
            "play",
            str(path),
            "-o",
            str(out),
            "--steps",
            "4",
            "--bev-size",
            "128",
            "--layout-size",
            "32",
            "56",
            "--json",
            str(scores),
        ]
    )
    assert args.func(args) == 0
    frames = [np.asarray(f) for f in imageio.get_reader(out)]
    assert len(frames) == 5  # the start and 4 steps
    assert frames[0].shape[0] == 128 and frames[0].shape[1] > 128 + 3 * 56
    assert not np.array_equal(frames[0], frames[-1])  # the world moved
    data = json.loads(scores.read_text())
    assert data["steps"] == 4 and 0.0 <= data["scores"]["pdms"] <= 1.0


def test_play_rejects_bad_input(tmp_path):
    path = library_paths()[0]
    with pytest.raises(UserError, match=r"gif or \.mp4"):
        args = parse(["play", str(path), "-o", str(tmp_path / "x.png")])
        args.func(args)
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: x\n")
    with pytest.raises(UserError, match=r"bad\.yaml"):
        args = parse(["play", str(bad), "-o", str(tmp_path / "x.gif")])
        args.func(args)
