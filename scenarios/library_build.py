"""Definitions of the library scenarios; `write_library()` regenerates `scenarios/library/*.yaml`.

Plain-driving scenarios keep every agent on its own lane and never behind the ego in the ego's lanes,
so a lane-following IDM autopilot drives them without a collision.
"""

from __future__ import annotations

import math
from pathlib import Path

from cvd_sim.scenarios import builders
from cvd_sim.scenarios.io import save_scenario
from cvd_sim.scenarios.library import LIBRARY_DIR
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.procedural import (
    curved_road,
    four_way_intersection,
    on_ramp_merge,
    straight_road,
    t_junction,
)
from cvd_sim.scenarios.schema import AgentSpec, EgoSpec, IdmBehavior, MapSpec, Pose, Scenario, SceneSpec


def _on_lane(m: MapSpec, lane: str, s: float, d: float = 0.0) -> Pose:
    x, y, yaw = road_map(m).pose_on_lane(lane, s, d)
    return Pose(x=round(x, 4), y=round(y, 4), yaw=round(yaw, 6))


def _idm(
    m: MapSpec,
    aid: str,
    route: list[str],
    s: float,
    speed: float,
    category: str = "car",
    desired: float | None = None,
) -> AgentSpec:
    return AgentSpec(
        id=aid,
        category=category,
        pose=_on_lane(m, route[0], s),
        speed=speed,
        behavior=IdmBehavior(route=route, desired_speed=desired or speed),
    )


def plain_day_straight() -> Scenario:
    m = straight_road(320.0, lanes_forward=3, lanes_backward=2)
    agents = [
        _idm(m, "lead", ["f1"], 60.0, 10.0),
        _idm(m, "right_1", ["f0"], 35.0, 9.0, "truck"),
        _idm(m, "right_2", ["f0"], 90.0, 9.0),
        _idm(m, "left_1", ["f2"], 45.0, 12.0),
        _idm(m, "oncoming_1", ["b0"], 150.0, 11.0, "bus"),
        _idm(m, "oncoming_2", ["b1"], 220.0, 12.0),
        AgentSpec(
            id="cyclist",
            category="bicycle",
            pose=_on_lane(m, "f0", 140.0, -1.0),
            speed=4.0,
            behavior=IdmBehavior(route=["f0"], desired_speed=4.0),
        ),
    ]
    return Scenario(
        name="plain_day_straight",
        description="Daytime urban arterial with light traffic in every lane.",
        tags=["plain"],
        duration=20.0,
        scene=SceneSpec(time_of_day="day", weather="clear", place="five-lane urban arterial"),
        map=m,
        ego=EgoSpec(pose=_on_lane(m, "f1", 20.0), speed=10.0, route=["f1"]),
        agents=agents,
    )


def plain_dusk_curve() -> Scenario:
    m = curved_road(
        radius=80.0, angle=math.pi / 2, lead_in=60.0, lead_out=80.0, lanes_forward=2, lanes_backward=1
    )
    agents = [
        _idm(m, "lead", ["f0"], 60.0, 9.0),
        _idm(m, "left_1", ["f1"], 40.0, 11.0),
        _idm(m, "oncoming_1", ["b0"], 60.0, 10.0),
        _idm(m, "oncoming_2", ["b0"], 140.0, 10.0, "truck"),
    ]
    return Scenario(
        name="plain_dusk_curve",
        description="A left-hand bend at dusk, following a lead car.",
        tags=["plain"],
        duration=20.0,
        scene=SceneSpec(time_of_day="dusk", weather="clear", place="suburban road with a bend"),
        map=m,
        ego=EgoSpec(pose=_on_lane(m, "f0", 20.0), speed=9.0, route=["f0"]),
        agents=agents,
    )


def plain_night_intersection() -> Scenario:
    m = four_way_intersection(1)
    through = ["south_in_0", "south_straight_0", "north_out_0"]
    agents = [
        _idm(m, "lead", through, 45.0, 8.0),
        _idm(m, "oncoming", ["north_in_0", "north_straight_0", "south_out_0"], 20.0, 8.0),
        _idm(m, "oncoming_2", ["north_in_0", "north_straight_0", "south_out_0"], 50.0, 8.0, "bus"),
        AgentSpec(
            id="walker", category="pedestrian", pose=_on_lane(m, "south_in_0", 60.0, 4.0 + 3.5), speed=0.0
        ),
        AgentSpec(id="parked", category="car", pose=_on_lane(m, "east_in_0", 40.0), speed=0.0),
    ]
    return Scenario(
        name="plain_night_intersection",
        description="Straight through a 4-way intersection at night behind a lead car, oncoming traffic.",
        tags=["plain"],
        duration=20.0,
        scene=SceneSpec(time_of_day="night", weather="clear", place="downtown intersection"),
        map=m,
        ego=EgoSpec(pose=_on_lane(m, "south_in_0", 25.0), speed=8.0, route=through),
        agents=agents,
    )


def plain_rain_highway() -> Scenario:
    m = on_ramp_merge(main_lanes=2, length=600.0, merge_start=300.0)
    agents = [
        _idm(m, "lead", ["f1_a", "f1_b", "f1_c"], 80.0, 22.0),
        _idm(m, "right_1", ["f0_a", "f0_b", "f0_c"], 40.0, 20.0, "truck"),
        _idm(m, "right_2", ["f0_a", "f0_b", "f0_c"], 110.0, 20.0),
    ]
    return Scenario(
        name="plain_rain_highway",
        description="Highway in the rain past an on-ramp, in the left lane.",
        tags=["plain"],
        duration=16.0,
        scene=SceneSpec(time_of_day="day", weather="rain", place="motorway"),
        map=m,
        ego=EgoSpec(pose=_on_lane(m, "f1_a", 20.0), speed=22.0, route=["f1_a", "f1_b", "f1_c"]),
        agents=agents,
    )


def plain_dusk_t_junction() -> Scenario:
    m = t_junction(1)
    route = ["south_in_0", "south_right_0", "east_out_0"]
    agents = [
        _idm(m, "lead", route, 50.0, 6.0),
        _idm(m, "westbound", ["east_in_0", "east_straight_0", "west_out_0"], 30.0, 9.0),
        _idm(m, "eastbound", ["west_in_0", "west_straight_0", "east_out_0"], 70.0, 9.0),
    ]
    return Scenario(
        name="plain_dusk_t_junction",
        description="Right turn out of a side street at dusk, behind a lead car.",
        tags=["plain"],
        duration=20.0,
        scene=SceneSpec(time_of_day="dusk", weather="cloudy", place="residential T-junction"),
        map=m,
        ego=EgoSpec(pose=_on_lane(m, "south_in_0", 25.0), speed=6.0, route=route),
        agents=agents,
    )


def library_scenarios() -> list[Scenario]:
    """Every library scenario, built from code."""
    edge = [
        builders.cut_in(time_of_day="day", weather="clear"),
        builders.cut_in(side="right", gap=5.0, cutter_speed=11.0, time_of_day="dusk", weather="clear"),
        builders.pedestrian_crossing(time_of_day="night", weather="clear"),
        builders.pedestrian_crossing(
            category="bicycle",
            walker_speed=4.0,
            side="left",
            trigger_distance=45.0,
            time_of_day="day",
            weather="cloudy",
        ),
        builders.jaywalker(time_of_day="dusk", weather="clear"),
        builders.stalled_vehicle(time_of_day="day", weather="rain"),
        builders.lead_vehicle_brake(time_of_day="day", weather="rain"),
        builders.oncoming_invasion(time_of_day="dusk", weather="fog"),
        builders.unprotected_left_turn(time_of_day="day", weather="clear"),
        builders.merge(time_of_day="night", weather="rain"),
    ]
    renamed = {1: "cut_in_right_dusk", 3: "cyclist_crossing_left"}
    edge = [sc.model_copy(update={"name": renamed[i]}) if i in renamed else sc for i, sc in enumerate(edge)]
    plain = [
        plain_day_straight(),
        plain_dusk_curve(),
        plain_night_intersection(),
        plain_rain_highway(),
        plain_dusk_t_junction(),
    ]
    return plain + edge


def write_library(out_dir: str | Path = LIBRARY_DIR) -> list[Path]:
    """Write every library scenario to `out_dir/<name>.yaml`."""
    return [save_scenario(sc, Path(out_dir) / f"{sc.name}.yaml") for sc in library_scenarios()]
