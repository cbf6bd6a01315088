"""Mosaic layout, colour maps and video writing."""

import imageio.v2 as imageio
import numpy as np

from cvd_sim.viz.colormap import colorize_depth
from cvd_sim.viz.mosaic import ring_mosaic, to_uint8
from cvd_sim.viz.video import write_video


def test_ring_mosaic_places_each_view():
    views = np.stack([np.full((4, 5, 3), 10 * (i + 1), np.uint8) for i in range(6)])
    m = ring_mosaic(views, border=1)
    assert m.shape == (2 * 4 + 3, 3 * 5 + 4, 3)
    # front row FL F FR, back row BL B BR
    assert m[1, 1, 0] == 10 and m[1, 7, 0] == 20 and m[1, 13, 0] == 30
    assert m[6, 1, 0] == 60 and m[6, 7, 0] == 50 and m[6, 13, 0] == 40


def test_to_uint8_maps_range():
    img = np.stack([np.full((2, 2), -1.0), np.zeros((2, 2)), np.ones((2, 2))])
    out = to_uint8(img)
    assert out.shape == (2, 2, 3)
    assert tuple(out[0, 0]) == (0, 128, 255)


def test_colorize_depth_marks_unknown_black_and_orders_near_far():
    d = np.array([0.0, 2.0, 60.0])
    rgb = colorize_depth(d)
    assert tuple(rgb[0]) == (0, 0, 0)
    assert rgb[1, 0] > rgb[1, 2] and rgb[2, 2] > rgb[2, 0]  # near reddish, far bluish


def test_write_video_roundtrip(tmp_path):
    frames = [np.full((31, 45, 3), 20 * i, np.uint8) for i in range(5)]
    path = write_video(tmp_path / "v.mp4", frames, fps=5)
    read = imageio.mimread(path)
    assert len(read) == 5 and read[0].shape[:2] == (32, 46)
    gif = write_video(tmp_path / "v.gif", frames, fps=5)
    assert len(imageio.mimread(gif)) == 5
