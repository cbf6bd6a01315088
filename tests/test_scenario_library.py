"""The library: valid, in sync with its definitions, covering the builders and conditions, and the plain
scenarios drivable by a lane-following IDM autopilot without an ego collision."""

from __future__ import annotations

import math

import pytest
from cvd_sim.scenarios.boxes import box_polygon
from cvd_sim.scenarios.builders import BUILDERS
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.library import library_names, library_paths, load_library_scenario
from cvd_sim.scenarios.library_build import write_library
from cvd_sim.scenarios.map_queries import Polyline2D, road_map
from cvd_sim.scenarios.trajectories import agent_states, scenario_times

LIBRARY = {p.stem: load_scenario(p) for p in library_paths()}


def test_library_is_valid_and_covers_builders_and_conditions():
    assert len(LIBRARY) >= 12
    tags = {t for sc in LIBRARY.values() for t in sc.tags}
    assert set(BUILDERS) <= tags
    plain = [sc for sc in LIBRARY.values() if "plain" in sc.tags]
    assert {sc.scene.time_of_day for sc in plain} >= {"day", "dusk", "night"}
    assert "rain" in {sc.scene.weather for sc in plain}
    assert all(sc.name == name for name, sc in LIBRARY.items())
    assert load_library_scenario("merge") == LIBRARY["merge"]
    assert sorted(library_names()) == sorted(LIBRARY)


def test_library_files_match_their_definitions(tmp_path):
    written = write_library(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in library_paths())
    for path in written:
        assert path.read_text() == (library_paths()[0].parent / path.name).read_text(), path.name


def _idm_autopilot_collides(sc) -> str | None:
    """Drive the ego along its route with IDM behind whatever is ahead in its path (agents open-loop);
    returns the id of the first agent whose box the ego touches, else None."""
    rmap = road_map(sc.map)
    path = Polyline2D(rmap.route_path(sc.ego.route))
    t = scenario_times(sc)
    others = {a.id: (agent_states(sc, a, t), a.dims) for a in sc.agents}
    v = sc.ego.vehicle
    s = float(path.frenet([sc.ego.pose.x, sc.ego.pose.y])[0])
    speed = sc.ego.speed
    v0, headway, gap0, a_max, b = rmap.lane(sc.ego.route[0]).spec.speed_limit, 1.5, 2.0, 2.0, 3.0
    for k in range(len(t)):
        x, y = path.xy(s + v.center_offset)
        yaw = float(path.heading(s + v.center_offset))
        ego_box = box_polygon(float(x), float(y), v.length, v.width, yaw)
        gap, lead_v = math.inf, 0.0
        for aid, (states, (length, width, _)) in others.items():
            if ego_box.intersects(box_polygon(*states[k, :2], length, width, states[k, 2])):
                return aid
            a_s, a_d = path.frenet(states[k, :2])
            ahead = float(a_s) - length / 2 - (s + v.length - v.rear_overhang)
            if abs(float(a_d)) < (width + v.width) / 2 + 0.3 and -v.length < ahead < gap:
                gap, lead_v = max(ahead, 0.01), float(states[k, 3]) * math.cos(states[k, 2] - yaw)
        s_star = gap0 + speed * headway + speed * (speed - lead_v) / (2 * math.sqrt(a_max * b))
        acc = a_max * (1 - (speed / v0) ** 4 - (max(s_star, 0.0) / gap) ** 2)
        acc = max(acc, -v.max_decel)
        new_speed = max(0.0, speed + acc * sc.dt)
        s += (speed + new_speed) / 2 * sc.dt
        speed = new_speed
    return None


@pytest.mark.parametrize("name", sorted(n for n, sc in LIBRARY.items() if "plain" in sc.tags))
def test_plain_scenarios_are_drivable_by_an_idm_autopilot(name):
    assert _idm_autopilot_collides(LIBRARY[name]) is None


def test_the_autopilot_check_can_fail():
    # the stalled vehicle blocks the ego lane: the same autopilot stops behind it (no collision), but with
    # a distance shorter than its braking distance it must hit it
    assert _idm_autopilot_collides(LIBRARY["stalled_vehicle"]) is None
    from cvd_sim.scenarios.builders import stalled_vehicle

    assert (
        _idm_autopilot_collides(stalled_vehicle(ego_speed=13.0, distance=3.0, warning_cone=False))
        == "stalled"
    )


def test_lead_vehicle_brake_is_avoidable_by_braking():
    assert _idm_autopilot_collides(LIBRARY["lead_vehicle_brake"]) is None
