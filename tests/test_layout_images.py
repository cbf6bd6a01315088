"""Layout images: box wireframes, map channels, near-plane and image clipping, distance cut."""

from __future__ import annotations

import numpy as np
import shapely
from cvd_sim.scenarios.categories import CATEGORIES, CATEGORY_ID

from cvd_sim.geometry.boxes import box_corners_3d
from cvd_sim.geometry.camera import CameraRig
from cvd_sim.geometry.projection import project_points
from cvd_sim.geometry.transforms import apply_transform
from cvd_sim.sensors.layout import (
    LAYOUT_CHANNELS,
    clip_segments_to_disc,
    clip_segments_to_rect,
    draw_layout,
    polyline_segments,
)

RIG = CameraRig.nuscenes(128, 224)
FRONT = RIG.select(["CAM_FRONT"])
NO_MAP = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


def draw(rig, boxes=None, cats=None, segments=NO_MAP, thickness=1):
    boxes = np.zeros((0, 7)) if boxes is None else boxes
    cats = np.zeros(0, dtype=np.int64) if cats is None else cats
    return draw_layout(
        boxes, cats, *segments, rig.intrinsics, rig.cam_to_ego, rig.height, rig.width, thickness=thickness
    ).numpy()


def test_box_corners_light_up_at_bruteforce_pinhole_projections_in_the_category_colour():
    boxes = np.array([[12.0, 1.0, 0.8, 4.6, 1.9, 1.6, 0.4], [-10.0, -2.0, 0.9, 7.5, 2.5, 1.8, 2.0]])
    cats = np.array([CATEGORY_ID["car"], CATEGORY_ID["truck"]])
    img = draw(RIG, boxes, cats)
    assert img.shape == (6, len(LAYOUT_CHANNELS), 128, 224)
    assert img[:, 3:].sum() == 0  # no map given
    corners = box_corners_3d(boxes)
    lit_corners = 0
    for v in range(6):
        ego_to_cam = np.linalg.inv(RIG.cam_to_ego[v])
        for b in range(2):
            for c in corners[b]:
                x, y, z = ego_to_cam[:3, :3] @ c + ego_to_cam[:3, 3]
                if z < 0.5:
                    continue
                k = RIG.intrinsics[v]
                u, w = k[0, 0] * x / z + k[0, 2], k[1, 1] * y / z + k[1, 2]
                col, row = int(np.floor(u)), int(np.floor(w))
                if 1 <= col < 223 and 1 <= row < 127:
                    patch = img[v, :3, row - 1 : row + 2, col - 1 : col + 2].reshape(3, -1)
                    colour = np.array(CATEGORIES[cats[b]].color_rgb) / 255.0
                    assert np.any(np.all(np.abs(patch.T - colour) < 1e-6, axis=1)), (v, b)
                    lit_corners += 1
    assert lit_corners >= 8


def test_segment_through_the_image_plane_is_clipped_not_wrapped():
    # a road edge 3 m to the right, from 20 m ahead to 20 m behind the ego: in the front camera it must stay
    # right of the principal point; projecting the endpoints naively would drag it across the whole image
    start, end = np.array([[20.0, -3.0, 0.0]]), np.array([[-20.0, -3.0, 0.0]])
    img = draw(FRONT, segments=(start, end, np.array([2])))
    rows, cols = np.nonzero(img[0, 5])
    assert len(cols) > 20
    cx = FRONT.intrinsics[0, 0, 2]
    assert cols.min() > cx
    # every lit pixel is on the brute-force projection of densely sampled visible points of the segment
    t = np.linspace(0, 1, 20001)[:, None]
    pts = apply_transform(np.linalg.inv(FRONT.cam_to_ego[0]), start + t * (end - start))
    pts = pts[pts[:, 2] > 0.1]
    uv, _ = project_points(pts, FRONT.intrinsics[0])
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 224) & (uv[:, 1] >= 0) & (uv[:, 1] < 128)
    expected = set(zip(np.floor(uv[inside, 1]).astype(int), np.floor(uv[inside, 0]).astype(int)))
    got = set(zip(rows.tolist(), cols.tolist()))

    def near(pixels):
        return {(r + dr, c + dc) for r, c in pixels for dr in (-1, 0, 1) for dc in (-1, 0, 1)}

    assert got <= near(expected) and expected <= near(got)


def test_map_types_go_to_their_channels_and_stop_at_65_m():
    # padded clip-dict polylines [M, P, 3] in the ego frame: a divider, a crosswalk, a boundary, a centreline
    p = 5
    xs = np.linspace(2.0, 200.0, p)
    lines = np.zeros((5, p, 3))
    lines[0, :, 0], lines[0, :, 1] = xs, 1.75
    lines[1, :, 0], lines[1, :, 1] = [10, 14, 14, 10, 10], [-5, -5, 5, 5, -5]
    lines[2, :, 0], lines[2, :, 1] = xs, -5.0
    lines[3, :, 0], lines[3, :, 1] = xs, 0.0
    types = np.array([0, 1, 2, 3, -1])
    segments = polyline_segments(lines, types)
    assert set(segments[2].tolist()) == {0, 1, 2}
    img = draw(FRONT, segments=segments)
    for channel in (3, 4, 5):
        assert img[0, channel].sum() > 0
    assert img[0, :3].sum() == 0
    # the divider is drawn up to 65 m (it lies 1.75 m to the side) and no further: the farthest lit row
    # matches the projection of the 65 m point
    reach = np.sqrt(65.0**2 - 1.75**2)
    cam = apply_transform(np.linalg.inv(FRONT.cam_to_ego[0]), np.array([[reach, 1.75, 0.0]]))
    uv_65, _ = project_points(cam, FRONT.intrinsics[0])
    rows = np.nonzero(img[0, 3])[0]
    assert abs(rows.min() - uv_65[0, 1]) < 1.5
    beyond = apply_transform(np.linalg.inv(FRONT.cam_to_ego[0]), np.array([[80.0, 1.75, 0.0]]))
    uv_far, _ = project_points(beyond, FRONT.intrinsics[0])
    assert rows.min() > uv_far[0, 1] + 0.5


def test_nearer_box_wins_where_wireframes_overlap():
    # two boxes on the optical axis; the far one is big enough that its edges cross the near one's
    near = [8.0, 0.0, 1.5, 1.0, 1.0, 3.0, 0.0]
    far = [30.0, 0.0, 1.5, 1.0, 12.0, 11.0, 0.0]
    cats = np.array([CATEGORY_ID["pedestrian"], CATEGORY_ID["bus"]])
    img = draw(FRONT, np.array([near, far]), cats)
    only_near = draw(FRONT, np.array([near]), cats[:1])
    mask = only_near[0, :3].sum(0) > 0
    np.testing.assert_array_equal(img[0, :3][:, mask], only_near[0, :3][:, mask])


def test_clipping_helpers_against_shapely():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-300, 500, (500, 2)), rng.uniform(-300, 500, (500, 2))
    s, e, keep = clip_segments_to_rect(a, b, 224.0, 128.0)
    rect = shapely.box(0, 0, 224, 128)
    for i in range(500):
        inter = shapely.LineString([a[i], b[i]]).intersection(rect)
        if inter.is_empty or inter.length < 1e-9:
            assert not keep[i] or np.linalg.norm(e[i] - s[i]) < 1e-6
            continue
        assert keep[i]
        assert abs(np.linalg.norm(e[i] - s[i]) - inter.length) < 1e-6
    a3 = np.concatenate([rng.uniform(-120, 120, (500, 2)), np.zeros((500, 1))], 1)
    b3 = np.concatenate([rng.uniform(-120, 120, (500, 2)), np.zeros((500, 1))], 1)
    s, e, keep = clip_segments_to_disc(a3, b3, 65.0)
    disc = shapely.Point(0, 0).buffer(65.0, quad_segs=512)
    for i in range(500):
        inter = shapely.LineString([a3[i, :2], b3[i, :2]]).intersection(disc)
        length = 0.0 if inter.is_empty else inter.length
        got = np.linalg.norm(e[i] - s[i]) if keep[i] else 0.0
        assert abs(got - length) < 1e-2


def test_clip_layout_matches_per_frame_drawing_and_data_map_types():
    from cvd_sim.data.map_polylines import MAP_TYPES
    from cvd_sim.geometry.transforms import invert_pose, pose_from_xyz_yaw
    from cvd_sim.sensors.layout import MAP_BOUNDARY, MAP_CROSSWALK, MAP_DIVIDER, layout_for_clip

    assert (MAP_TYPES[MAP_DIVIDER], MAP_TYPES[MAP_CROSSWALK], MAP_TYPES[MAP_BOUNDARY]) == (
        "divider",
        "ped_crossing",
        "boundary",
    )
    poses = pose_from_xyz_yaw([100.0, 104.0], [50.0, 50.5], [0.0, 0.0], [0.0, 0.1])  # [2, 4, 4]
    boxes = np.zeros((2, 3, 7))
    boxes[:, 0] = [15.0, 0.0, 0.8, 4.6, 1.9, 1.6, 0.0]
    cats = np.array([[0, -1, -1], [0, -1, -1]])
    lines = np.zeros((2, 4, 3))
    lines[0, :, 0], lines[0, :, 1] = np.linspace(90, 160, 4), 52.0
    lines[1, :, 0], lines[1, :, 1] = np.linspace(90, 160, 4), 47.0
    types = np.array([0, 2])
    ks = np.broadcast_to(RIG.intrinsics, (2, 6, 3, 3))
    cams = np.broadcast_to(RIG.cam_to_ego, (2, 6, 4, 4))
    clip = layout_for_clip(boxes, cats, lines, types, poses, ks, cams, 128, 224)
    assert clip.shape == (2, 6, 6, 128, 224)
    for t in range(2):
        s, e, k = polyline_segments(lines, types)
        w2e = invert_pose(poses[t])
        ref = draw(
            RIG, boxes[t, :1], cats[t, :1], (apply_transform(w2e, s), apply_transform(w2e, e), k), thickness=2
        )
        np.testing.assert_array_equal(clip[t].numpy(), ref)
    assert not np.array_equal(clip[0].numpy(), clip[1].numpy())
