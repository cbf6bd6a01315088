"""Procedural maps: parametric geometry, connected lane graphs, seeded random maps."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from cvd_sim.scenarios.map_queries import Polyline2D, road_map
from cvd_sim.scenarios.procedural import (
    MAP_KINDS,
    four_way_intersection,
    on_ramp_merge,
    random_map,
    straight_road,
    t_junction,
)
from cvd_sim.scenarios.validate import map_problems


@pytest.mark.parametrize("lanes_forward,lanes_backward,width", [(1, 1, 3.5), (3, 0, 3.0), (2, 2, 3.75)])
def test_straight_road_lane_layout(lanes_forward, lanes_backward, width):
    m = straight_road(150.0, lanes_forward, lanes_backward, width, heading=math.radians(30))
    assert not map_problems(m)
    rmap = road_map(m)
    assert rmap.drivable_area.area == pytest.approx(
        150.0 * width * (lanes_forward + lanes_backward), rel=2e-5
    )
    ref = Polyline2D([(0.0, 0.0), (150 * math.cos(math.radians(30)), 150 * math.sin(math.radians(30)))])
    for i in range(lanes_forward):
        _, d = ref.frenet(rmap.lane(f"f{i}").points)
        np.testing.assert_allclose(d, -(lanes_forward - i - 0.5) * width, atol=1e-4)
        assert rmap.lane(f"f{i}").heading(10.0) == pytest.approx(math.radians(30))
    for i in range(lanes_backward):
        assert rmap.lane(f"b{i}").heading(10.0) == pytest.approx(math.radians(30) - math.pi)
    if lanes_forward > 1:
        assert rmap.link_kind("f0", "f1") == "left" and rmap.link_kind("f1", "f0") == "right"


@pytest.mark.parametrize("builder,arms", [(four_way_intersection, 4), (t_junction, 3)])
@pytest.mark.parametrize("lanes", [1, 2])
def test_junctions_connect_every_approach(builder, arms, lanes):
    m = builder(lanes_per_direction=lanes)
    assert not map_problems(m)
    rmap = road_map(m)
    incoming = [lane for lane in rmap.lanes if "_in_" in lane]
    outgoing = [lane for lane in rmap.lanes if "_out_" in lane]
    assert len(incoming) == len(outgoing) == arms * lanes
    for lane_id in incoming:  # every approach reaches at least one exit on another arm
        arm = lane_id.split("_")[0]
        reachable = {v for v in nx.descendants(rmap.graph, lane_id) if "_out_" in v and not v.startswith(arm)}
        assert reachable, lane_id
    for lane_id in [
        lane for lane in rmap.lanes if lane.count("_") == 2 and "_in_" not in lane and "_out_" not in lane
    ]:
        spec = rmap.lane(lane_id).spec
        (pred,), (succ,) = spec.predecessors, spec.successors
        # connectors join their lanes end to start, with matching headings
        assert rmap.lane(pred).points[-1] == pytest.approx(rmap.lane(lane_id).points[0], abs=1e-3)
        assert rmap.lane(lane_id).points[-1] == pytest.approx(rmap.lane(succ).points[0], abs=1e-3)
        end_heading = float(rmap.lane(lane_id).heading(rmap.lane(lane_id).length))
        assert math.cos(end_heading - float(rmap.lane(succ).heading(0.0))) > 0.999
    assert len(m.crosswalks) == arms and len(m.stop_lines) == arms


def test_on_ramp_merge_route_and_taper():
    m = on_ramp_merge(main_lanes=2, lane_width=3.75)
    rmap = road_map(m)
    assert rmap.shortest_route("ramp", "f0_c") == ["ramp", "acc", "f0_c"]
    acc = rmap.lane("acc").points
    assert acc[-1] == pytest.approx(rmap.lane("f0_c").points[0], abs=1e-3)
    parallel = acc[acc[:, 0] <= rmap.lane("f0_b").points[-1, 0] - 40.0]  # before the 40 m taper
    assert len(parallel) >= 2
    _, d = rmap.lane("f0_b").frenet(parallel)
    np.testing.assert_allclose(d, -3.75, atol=1e-3)  # the acceleration lane runs beside f0_b
    assert rmap.link_kind("acc", "f0_b") == "left"
    assert all(rmap.lane(lane).spec.type == "freeway" for lane in rmap.lanes)


def test_random_maps_are_seeded_and_valid():
    maps = [random_map(seed) for seed in range(10)] + [
        random_map(seed, kind) for seed in range(3) for kind in MAP_KINDS
    ]
    assert {m.name for m in maps} == set(MAP_KINDS)
    assert all(not map_problems(m) for m in maps)
    assert random_map(3) == random_map(3) and random_map(3) != random_map(4)
    with pytest.raises(ValueError):
        random_map(0, kind="roundabout")
