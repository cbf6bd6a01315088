"""Map geometry against analytic references: Frenet on arcs, routing lengths, drivable area, nearest lane."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from cvd_sim.scenarios.boxes import box_polygon
from cvd_sim.scenarios.map_queries import LANE_CHANGE_COST, Polyline2D, road_map
from cvd_sim.scenarios.procedural import curved_road, four_way_intersection, straight_road


def _arc(radius: float, angle: float, step: float = 0.5) -> np.ndarray:
    """Counter-clockwise arc around the origin starting at (radius, 0)."""
    phi = np.linspace(0.0, angle, max(2, math.ceil(radius * angle / step) + 1))
    return radius * np.column_stack([np.cos(phi), np.sin(phi)])


def test_frenet_on_an_arc_matches_polar_coordinates():
    radius = 40.0
    line = Polyline2D(_arc(radius, math.pi / 2))
    assert line.length == pytest.approx(radius * math.pi / 2, rel=1e-4)
    rng = np.random.default_rng(0)
    phi = rng.uniform(0.05, math.pi / 2 - 0.05, 200)
    r = radius + rng.uniform(-8.0, 8.0, 200)
    xy = np.column_stack([r * np.cos(phi), r * np.sin(phi)])
    s, d = line.frenet(xy)
    # counter-clockwise travel: the centre is on the left, so d = radius - r; on a polyline of 0.5 m chords
    # s is exact on the arc and off by at most chord * |d| / radius / 2 beside it
    np.testing.assert_allclose(s, radius * phi, atol=0.5 * 8.0 / radius / 2 + 0.005)
    np.testing.assert_allclose(d, radius - r, atol=0.01)
    np.testing.assert_allclose(line.xy(s, d), xy, atol=1e-9)  # the frame is exactly invertible
    np.testing.assert_allclose(line.heading(s), phi + math.pi / 2, atol=0.02)


def test_frenet_inverts_xy_on_a_wiggly_line():
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 100.0, 40)
    line = Polyline2D(np.column_stack([x, 3.0 * np.sin(x / 9.0) + rng.normal(0, 0.05, 40)]))
    s = rng.uniform(0.0, line.length, 300)
    d = rng.uniform(-2.0, 2.0, 300)
    s_back, d_back = line.frenet(line.xy(s, d))
    np.testing.assert_allclose(s_back, s, atol=1e-7)
    np.testing.assert_allclose(d_back, d, atol=1e-7)
    # the frame is continuous: offset points move little for a small step in s
    steps = np.linalg.norm(np.diff(line.xy(np.linspace(0, line.length, 5000), 2.0), axis=0), axis=1)
    assert steps.max() < 3 * line.length / 5000


def test_frenet_extrapolates_past_the_ends():
    line = Polyline2D([(0.0, 0.0), (10.0, 0.0)])
    s, d = line.frenet([[-3.0, 2.0], [14.0, -1.0]])
    np.testing.assert_allclose(s, [-3.0, 14.0])
    np.testing.assert_allclose(d, [2.0, -1.0])
    np.testing.assert_allclose(
        line.xy(np.array([-3.0, 14.0]), np.array([2.0, -1.0])), [[-3.0, 2.0], [14.0, -1.0]]
    )


def test_curved_road_lanes_are_concentric_arcs():
    radius, angle, w = 60.0, math.pi / 2, 3.5
    m = curved_road(
        radius=radius,
        angle=angle,
        lead_in=30.0,
        lead_out=30.0,
        lanes_forward=2,
        lanes_backward=1,
        lane_width=w,
    )
    rmap = road_map(m)
    centre = np.array([30.0, radius])  # left turn after a 30 m lead-in along +x from the origin
    for lane_id, expected_r in (("f0", radius + 1.5 * w), ("f1", radius + 0.5 * w), ("b0", radius - 0.5 * w)):
        lane = rmap.lane(lane_id)
        pts = lane.points
        on_arc = pts[(pts[:, 0] > 30.5) & (pts[:, 1] < radius - 0.5)]
        np.testing.assert_allclose(
            np.linalg.norm(on_arc - centre, axis=1), expected_r, atol=2e-4
        )  # 4-decimal file coords
        assert lane.length == pytest.approx(60.0 + expected_r * angle, rel=2e-4)
    # the drivable area is the annulus sector plus the two straights
    expected = angle / 2 * ((radius + 2 * w) ** 2 - (radius - w) ** 2) + 60.0 * 3 * w
    assert rmap.drivable_area.area == pytest.approx(expected, rel=2e-3)


def test_shortest_route_left_turn_length_is_a_quarter_circle():
    m = four_way_intersection(lanes_per_direction=1, lane_width=3.5, arm_length=80.0, corner_radius=6.0)
    rmap = road_map(m)
    route = rmap.shortest_route("south_in_0", "west_out_0")
    assert route == ["south_in_0", "south_left_0", "west_out_0"]
    # the left turn joins (1.75, -9.5) heading north to (-9.5, 1.75) heading west: radius 11.25 about (-9.5, -9.5)
    path = Polyline2D(rmap.route_path(route))
    assert path.length == pytest.approx(160.0 + 11.25 * math.pi / 2, rel=1e-3)
    connector = rmap.lane("south_left_0").points
    np.testing.assert_allclose(np.linalg.norm(connector - [-9.5, -9.5], axis=1), 11.25, atol=0.03)


def test_shortest_route_matches_brute_force_enumeration():
    m = four_way_intersection(lanes_per_direction=2)
    rmap = road_map(m)

    def cost(path):
        return sum(rmap.graph.edges[a, b]["weight"] for a, b in itertools.pairwise(path))

    for start, goal in [
        ("south_in_0", "north_out_1"),
        ("east_in_1", "south_out_1"),
        ("west_in_0", "north_out_0"),
    ]:
        best = min(nx.all_simple_paths(rmap.graph, start, goal, cutoff=6), key=cost)
        found = rmap.shortest_route(start, goal)
        assert cost(found) == pytest.approx(cost(best))
        for a, b in itertools.pairwise(found):
            assert rmap.link_kind(a, b) is not None


def test_lane_change_route_and_no_route():
    rmap = road_map(straight_road(200.0, lanes_forward=2, lanes_backward=1))
    assert rmap.shortest_route("f0", "f1") == ["f0", "f1"]
    assert rmap.graph.edges["f0", "f1"]["weight"] == LANE_CHANGE_COST
    with pytest.raises(ValueError):
        rmap.shortest_route("f0", "b0")
    with pytest.raises(ValueError):
        rmap.shortest_route("f0", "f1", allow_lane_change=False)
    path = rmap.route_path(["f0", "f1"])
    assert path[0, 1] == pytest.approx(-5.25) and path[-1, 1] == pytest.approx(-1.75)


def test_nearest_lane_uses_heading():
    rmap = road_map(straight_road(200.0, lanes_forward=1, lanes_backward=1))
    near_centre = (50.0, -0.2)  # just right of the dividing line, in f0
    assert rmap.nearest_lane(*near_centre).lane_id == "f0"
    assert rmap.nearest_lane(*near_centre, yaw=math.pi).lane_id == "b0"  # facing backwards
    match = rmap.nearest_lane(50.0, 1.0)
    assert match.lane_id == "b0" and match.s == pytest.approx(150.0) and match.d == pytest.approx(0.75)
    assert rmap.lanes_at(50.0, -1.0) == ["f0"]


def test_box_polygon_matches_rotated_corners():
    poly = box_polygon(2.0, 1.0, 4.0, 2.0, math.pi / 2)
    assert poly.area == pytest.approx(8.0)
    minx, miny, maxx, maxy = poly.bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((1.0, -1.0, 3.0, 3.0))
