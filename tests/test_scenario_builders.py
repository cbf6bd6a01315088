"""Each edge-case builder's geometry does what its name says (checked on the open-loop trajectories)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from cvd_sim.scenarios import builders
from cvd_sim.scenarios.boxes import agent_polygon, ego_polygon
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.trajectories import (
    agent_states,
    ego_center_states,
    ego_states,
    scenario_times,
    trigger_time,
)
from shapely.geometry import LineString, Point


def _front_s(sc, t):
    """Ego front bumper arc length along its first lane at times t (constant speed)."""
    lane = road_map(sc.map).lane(sc.ego.route[0])
    s0 = float(lane.frenet([sc.ego.pose.x, sc.ego.pose.y])[0])
    return s0 + sc.ego.speed * t + sc.ego.vehicle.length - sc.ego.vehicle.rear_overhang


def _crossing_time(t, value, level):
    """First time value(t) crosses `level` (linear interpolation)."""
    above = value > level
    k = int(np.nonzero(above[1:] != above[:-1])[0][0])
    return t[k] + (level - value[k]) / (value[k + 1] - value[k]) * (t[k + 1] - t[k])


@pytest.mark.parametrize("side,gap", [("left", 6.0), ("left", 12.0), ("right", 8.0)])
def test_cut_in_enters_ego_lane_at_requested_gap(side, gap):
    sc = builders.cut_in(gap=gap, side=side, cut_time=3.0, ego_speed=12.0, cutter_speed=10.0)
    lane = road_map(sc.map).lane(sc.ego.route[0])
    t = np.arange(0.0, sc.duration, 0.01)
    states = agent_states(sc, sc.agent("cutter"), t)
    s, d = lane.frenet(states[:, :2])
    assert abs(d[0]) == pytest.approx(3.5)  # starts in the adjacent lane on the requested side
    assert np.sign(d[0]) == (1 if side == "left" else -1)
    t_enter = _crossing_time(t, np.abs(d), 1.75)  # centre crosses the lane boundary
    assert t_enter == pytest.approx(3.0, abs=0.02)
    s_enter = np.interp(t_enter, t, s)
    rear = s_enter - sc.agent("cutter").dims[0] / 2
    assert rear - _front_s(sc, t_enter) == pytest.approx(gap, abs=0.1)
    assert abs(d[-1]) < 0.01  # ends centred in the ego lane


def test_pedestrian_crossing_walks_across_ego_lane_on_the_crosswalk():
    sc = builders.pedestrian_crossing(crosswalk_distance=40.0, side="right", trigger_distance=30.0)
    rmap = road_map(sc.map)
    walker = sc.agent("walker")
    crosswalk = rmap.crosswalks["crosswalk"]
    assert not rmap.drivable_area.contains(Point(walker.pose.x, walker.pose.y))  # waits at the kerb
    t = scenario_times(sc)
    states = agent_states(sc, walker, t)
    path = LineString(states[:, :2])
    assert path.intersects(rmap.lane("f0").polygon) and path.intersects(rmap.lane("b0").polygon)
    assert crosswalk.buffer(2.0).contains(path)  # stays on the crosswalk, kerbs included
    assert states[0, 1] < 0 < states[-1, 1]  # right kerb (y < 0) to the left
    # the walk starts when the ego centre comes within 30 m
    fire = trigger_time(sc, walker, t)
    ego = ego_center_states(sc, t)
    k = round(fire / sc.dt)
    dist = np.hypot(*(ego[:, :2] - [walker.pose.x, walker.pose.y]).T)
    assert dist[k] <= 30.0 < dist[k - 1]
    assert np.allclose(states[: k + 1, :2], states[0, :2]) and states[k + 5, 1] > states[0, 1]
    # the crosswalk centre is 40 m ahead of the ego front bumper
    assert crosswalk.centroid.x - _front_s(sc, 0.0) == pytest.approx(40.0)


def test_jaywalker_is_hidden_then_steps_into_the_ego_lane():
    sc = builders.jaywalker(parked_distance=35.0, trigger_distance=22.0)
    rmap = road_map(sc.map)
    parked, walker = sc.agent("parked"), sc.agent("jaywalker")
    occluder = agent_polygon(parked)
    ego_front = ego_polygon(sc.ego).centroid
    # line of sight from the ego to the pedestrian passes through the parked vehicle
    assert LineString([(ego_front.x, ego_front.y + 0.5), (walker.pose.x, walker.pose.y)]).intersects(occluder)
    assert rmap.lanes_at(parked.pose.x, parked.pose.y) == ["f0"]  # parked in the kerb lane
    assert not agent_polygon(walker).intersects(occluder)
    states = agent_states(sc, walker)
    assert (
        rmap.lane("f1").polygon.contains(Point(*states[-1, :2]))
        or states[-1, 1] > rmap.lane("f1").points[0, 1]
    )
    assert LineString(states[:, :2]).intersects(rmap.lane("f1").polygon)
    assert trigger_time(sc, walker) is not None


def test_stalled_vehicle_blocks_the_ego_lane_at_distance():
    sc = builders.stalled_vehicle(distance=50.0, warning_cone=True)
    rmap = road_map(sc.map)
    stalled = sc.agent("stalled")
    assert rmap.lane("f0").polygon.contains(agent_polygon(stalled))
    rear = stalled.pose.x - stalled.dims[0] / 2
    assert rear - _front_s(sc, 0.0) == pytest.approx(50.0)
    assert np.allclose(agent_states(sc, stalled)[:, 3], 0.0)
    assert sc.agent("cone").pose.x < rear


def test_lead_vehicle_brake_profile():
    v, tb, a, gap = 13.0, 3.0, 6.0, 2.0
    sc = builders.lead_vehicle_brake(
        ego_speed=13.0, lead_speed=v, time_gap=gap, brake_time=tb, deceleration=a
    )
    lead = sc.agent("lead")
    t = np.arange(0.0, 10.0, 0.05)
    x = agent_states(sc, lead, t)[:, 0]
    rear0 = x[0] - lead.dims[0] / 2
    assert rear0 - _front_s(sc, 0.0) == pytest.approx(gap * 13.0)
    before = t <= tb
    np.testing.assert_allclose(x[before] - x[0], v * t[before], atol=1e-6)
    # stopping distance v^2 / 2a after braking starts (waypoints every 0.25 s, linear in between)
    assert x[-1] - x[0] == pytest.approx(v * tb + v * v / (2 * a), abs=0.05)
    braking = (t > tb + 0.3) & (t < tb + v / a - 0.3)
    speed = np.gradient(x, t)
    fit = np.polyfit(t[braking], speed[braking], 1)
    assert fit[0] == pytest.approx(-a, rel=0.05)


def test_oncoming_invasion_depth_and_timing():
    sc = builders.oncoming_invasion(invasion=1.2, peak_time=3.5, excursion_duration=4.0, meet_time=5.0)
    lane = road_map(sc.map).lane("f0")
    oncoming = sc.agent("oncoming")
    t = np.arange(0.0, 8.0, 0.01)
    states = agent_states(sc, oncoming, t)
    _, d = lane.frenet(states[:, :2])
    near_side = d - oncoming.dims[1] / 2  # its side towards the ego lane
    intrusion = 1.75 - near_side  # metres inside the ego lane (its left edge is at d = 1.75)
    assert intrusion[0] < 0  # starts in its own lane
    assert intrusion.max() == pytest.approx(1.2, abs=0.01)
    assert t[np.argmax(intrusion)] == pytest.approx(3.5, abs=0.15)
    assert abs(states[0, 2]) == pytest.approx(math.pi, abs=1e-3)  # drives against the ego


@pytest.mark.parametrize("time_gap", [-1.0, 2.0])
def test_unprotected_left_turn_oncoming_arrives_after_time_gap(time_gap):
    sc = builders.unprotected_left_turn(ego_speed=8.0, oncoming_speed=10.0, time_gap=time_gap)
    rmap = road_map(sc.map)
    assert sc.ego.route == ["south_in_0", "south_left_0", "west_out_0"]
    oncoming = sc.agent("oncoming")
    x, y, _, _ = builders.conflict_point(
        rmap, sc.ego.route, ["north_in_0", "north_straight_0", "south_out_0"]
    )
    t = np.arange(0.0, sc.duration, 0.01)
    ego = ego_states(sc, t)
    onc = agent_states(sc, oncoming, t)
    t_ego = t[np.argmin(np.hypot(ego[:, 0] - x, ego[:, 1] - y))]
    t_onc = t[np.argmin(np.hypot(onc[:, 0] - x, onc[:, 1] - y))]
    assert t_onc - t_ego == pytest.approx(time_gap, abs=0.05)


def test_merge_puts_a_gap_beside_the_ego_at_the_merge_point():
    sc = builders.merge(ego_speed=18.0, main_speed=22.0, main_gap=30.0, num_main=4, gap_offset=0.0)
    rmap = road_map(sc.map)
    x_merge = rmap.lane("f0_c").points[0, 0]
    t = np.arange(0.0, sc.duration, 0.01)
    ego = ego_center_states(sc, t)
    k = int(np.argmin(np.abs(ego[:, 0] - x_merge)))
    xs = sorted(agent_states(sc, sc.agent(f"main_{i}"), t[k : k + 1])[0, 0] for i in range(4))
    gaps = [(b - a) for a, b in itertools.pairwise(xs)]
    np.testing.assert_allclose(gaps, 30.0 + 4.6, atol=0.5)  # IDM at its equilibrium keeps the spacing
    mids = [(a + b) / 2 for a, b in itertools.pairwise(xs)]
    assert min(abs(m - ego[k, 0]) for m in mids) < 1.0


def test_sweep_grid():
    out = builders.sweep("cut_in", {"gap": [5.0, 10.0], "side": ["left", "right"]}, ego_speed=10.0)
    assert len(out) == 4 and len({sc.name for sc in out}) == 4
    assert {sc.ego.speed for sc in out} == {10.0}


def test_bad_builder_parameters_raise():
    with pytest.raises(ValueError):
        builders.cut_in(side="middle")
    with pytest.raises(ValueError):
        builders.unprotected_left_turn(approach_distance=500.0)
