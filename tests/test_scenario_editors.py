"""Box and map editors: each edit does what it says, and bad edits are refused without changing anything."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cvd_sim.scenarios.editors import ScenarioEditor, merge_maps, transform_map
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.procedural import straight_road, t_junction
from cvd_sim.scenarios.schema import EgoSpec, Pose, Scenario
from cvd_sim.scenarios.trajectories import agent_states
from shapely.geometry import Point


def _editor() -> ScenarioEditor:
    m = straight_road(200.0, lanes_forward=2, lanes_backward=1)
    return ScenarioEditor(
        Scenario(name="e", map=m, ego=EgoSpec(pose=Pose(x=10.0, y=-5.25), speed=5.0, route=["f0"]))
    )


def test_add_by_lane_position_and_move_rotate_resize_clone_remove():
    ed = _editor()
    ed.add_agent("car", lane="f1", s=50.0, offset=0.5, speed=4.0, behavior={"type": "idm", "route": ["f1"]})
    car = ed.scenario.agent("car")
    assert (car.pose.x, car.pose.y, car.pose.yaw) == pytest.approx((50.0, -1.25, 0.0))
    ed.move_agent("car", x=70.0, y=-1.75)
    assert ed.scenario.agent("car").pose.x == 70.0 and ed.scenario.agent("car").pose.yaw == 0.0
    ed.rotate_agent("car", delta=0.2).rotate_agent("car", delta=0.1)
    assert ed.scenario.agent("car").pose.yaw == pytest.approx(0.3)
    ed.resize_agent("car", length=5.5)
    assert ed.scenario.agent("car").dims == (5.5, 1.9, 1.6)
    ed.clone_agent("car", "car2", lane="b0", s=20.0, behavior={"type": "static"})
    clone = ed.scenario.agent("car2")
    assert clone.dims == (5.5, 1.9, 1.6) and clone.pose.yaw == pytest.approx(math.pi)
    ed.remove_agent("car")
    assert [a.id for a in ed.scenario.agents] == ["car2"]


def test_bad_edits_are_refused_and_leave_the_scenario_unchanged():
    ed = _editor().add_agent("car", lane="f0", s=60.0)
    before = ed.scenario
    cases = [
        (lambda: ed.move_agent("car", x=12.0, y=-5.25), "agents.0.pose"),  # onto the ego
        (lambda: ed.move_agent("car", x=60.0, y=500.0), "agents.0.pose"),  # off the map
        (lambda: ed.add_agent("car", lane="f0", s=90.0), "agents"),  # duplicate id
        (lambda: ed.add_agent("x", lane="nope", s=1.0), "agents.1.pose"),
        (lambda: ed.resize_agent("car", width=-1.0), "agents.0.size.1"),
        (lambda: ed.set_behavior("car", {"type": "idm", "route": ["b0"]}), "agents.0.pose"),
        (lambda: ed.remove_lane("f0"), "ego.route.0"),
        (lambda: ed.reshape("lanes", "f1", [(0.0, 0.0)]), "map.lanes.1.centerline"),
        (
            lambda: ed.add_stop_line("s", [(50.0, 0.0), (50.0, -7.0)], lanes=["ghost"]),
            "map.stop_lines.0.lanes.0",
        ),
        (lambda: ed.rotate_agent("ghost", yaw=1.0), "agents"),
    ]
    for edit, field in cases:
        with pytest.raises(ScenarioError) as info:
            edit()
        assert field in [p.field for p in info.value.problems]
        assert ed.scenario is before


def test_set_trajectory_is_followed():
    ed = _editor().add_agent("walker", category="pedestrian", x=60.0, y=-9.0)
    ed.set_trajectory("walker", [(0.0, 60.0, -9.0), (4.0, 60.0, 3.0)])
    states = agent_states(ed.scenario, ed.scenario.agent("walker"), np.array([0.0, 2.0, 4.0, 6.0]))
    np.testing.assert_allclose(states[:, :2], [[60, -9], [60, -3], [60, 3], [60, 3]])
    np.testing.assert_allclose(states[:, 3], [3.0, 3.0, 0.0, 0.0])


def test_map_edits_and_transform():
    ed = _editor()
    ed.add_lane("f0_next", [(200.0, -5.25), (260.0, -5.25)], predecessors=["f0"])
    assert "f0_next" in ed.scenario.map.lane("f0").successors  # the link is mirrored
    ed.set_ego(route=["f0", "f0_next"])
    assert road_map(ed.scenario.map).shortest_route("f0", "f0_next") == ["f0", "f0_next"]
    ed.add_crosswalk("cw", [(100, -7), (104, -7), (104, 3.5), (100, 3.5)])
    ed.add_stop_line("stop", [(98.0, -7.0), (98.0, 0.0)], lanes=["f0", "f1"])
    ed.reshape("lanes", "f0_next", [(200.0, -5.25), (230.0, -5.25), (260.0, 0.0)])
    ed.add_agent("car", lane="f1", s=40.0)
    ed.set_trajectory("car", [(0, 40.0, -1.75, 0.0), (4, 80.0, -1.75, 0.0)])
    before = ed.scenario
    ed.transform(dx=100.0, dy=-20.0, dyaw=math.pi / 2)
    after = ed.scenario
    # every point moved by the same rigid motion: (x, y) -> (-y + 100, x - 20)
    car0, car1 = before.agent("car"), after.agent("car")
    assert (car1.pose.x, car1.pose.y) == pytest.approx((-car0.pose.y + 100.0, car0.pose.x - 20.0))
    assert car1.pose.yaw == pytest.approx(car0.pose.yaw + math.pi / 2)
    p0, p1 = car0.behavior.points[1], car1.behavior.points[1]
    assert (p1.x, p1.y, p1.yaw) == pytest.approx((-p0.y + 100.0, p0.x - 20.0, math.pi / 2))
    assert road_map(after.map).drivable_area.area == pytest.approx(road_map(before.map).drivable_area.area)
    assert (after.ego.pose.x, after.ego.pose.y) == pytest.approx(
        (-before.ego.pose.y + 100.0, before.ego.pose.x - 20.0)
    )
    ed.remove_feature("crosswalks", "cw")
    assert not ed.scenario.map.crosswalks


def test_transform_and_merge_maps():
    a = straight_road(100.0, 1, 1)
    moved = transform_map(a, dx=5.0, dyaw=math.pi)
    assert moved.lane("f0").centerline[0] == pytest.approx((5.0, 1.75))
    junction = t_junction(1)
    merged = merge_maps(a, transform_map(junction, dx=500.0), prefix="tj_")
    assert len(merged.lanes) == len(a.lanes) + len(junction.lanes)
    assert merged.lane("tj_south_in_0").successors[0].startswith("tj_")
    rmap = road_map(merged)
    assert rmap.drivable_area.contains(Point(500.0, 0.0)) and rmap.drivable_area.contains(Point(50.0, -1.75))
    with pytest.raises(ScenarioError):
        merge_maps(a, a)  # clashing ids without a prefix
