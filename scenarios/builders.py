"""Edge-case builders: parametric scenarios (cut-in, pedestrian crossing, jaywalker, stalled vehicle,
lead vehicle hard brake, oncoming invasion, unprotected left turn, merge) and parameter sweeps.

Distances are bumper to bumper unless said otherwise; the ego is assumed to keep its initial speed when a
builder times an event against it. Bad parameters raise `ValueError`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from cvd_sim.scenarios.categories import CATEGORIES, category_id
from cvd_sim.scenarios.map_queries import RoadMap, road_map
from cvd_sim.scenarios.procedural import four_way_intersection, on_ramp_merge, straight_road
from cvd_sim.scenarios.schema import (
    AgentSpec,
    CrosswalkSpec,
    EgoSpec,
    IdmBehavior,
    MapSpec,
    Pose,
    Scenario,
    SceneSpec,
    StaticBehavior,
    TriggerBehavior,
    TriggerCondition,
    VehicleParams,
    Waypoint,
    WaypointsBehavior,
)

WAYPOINT_STEP = 0.25  # s between generated waypoints
EGO_START_S = 20.0  # m along the first lane where the ego's rear axle starts on straight roads


def _size(category: str) -> tuple[float, float, float]:
    return CATEGORIES[category_id(category)].size_lwh


def _scene(time_of_day: str, weather: str, place: str) -> SceneSpec:
    return SceneSpec(time_of_day=time_of_day, weather=weather, place=place)


def _ego_on(rmap: RoadMap, route: list[str], s: float, speed: float) -> EgoSpec:
    x, y, yaw = rmap.pose_on_lane(route[0], s)
    return EgoSpec(pose=Pose(x=x, y=y, yaw=yaw), speed=speed, route=route)


def _waypoints(
    fn: Callable[[float], tuple[float, float]], t_end: float, step: float = WAYPOINT_STEP
) -> list[Waypoint]:
    """Timed waypoints of a path xy = fn(t) for t in [0, t_end], with yaw along the motion."""
    ts = np.arange(0.0, t_end + 1e-9, step)
    pts = np.array([fn(float(t)) for t in ts])
    out, yaw = [], None
    for k, t in enumerate(ts):
        a, b = pts[max(k - 1, 0)], pts[min(k + 1, len(ts) - 1)]
        if np.linalg.norm(b - a) > 1e-6:
            yaw = math.atan2(b[1] - a[1], b[0] - a[0])
        out.append(
            Waypoint(
                t=round(float(t), 4),
                x=round(float(pts[k, 0]), 4),
                y=round(float(pts[k, 1]), 4),
                yaw=None if yaw is None else round(yaw, 5),
            )
        )
    return out


def _smoothstep(tau: np.ndarray | float) -> np.ndarray | float:
    """0 -> 1 on tau in [0, 1], clamped, with zero slope at both ends."""
    tau = np.clip(tau, 0.0, 1.0)
    return (1 - np.cos(np.pi * tau)) / 2


def _road_length(ego_speed: float, duration: float, extra: float = 0.0) -> float:
    return max(250.0, EGO_START_S + ego_speed * duration + extra + 80.0)


def _front(ego: VehicleParams) -> float:
    """Rear axle to front bumper."""
    return ego.length - ego.rear_overhang


# ---------------------------------------------------------------- builders


def cut_in(
    ego_speed: float = 12.0,
    cutter_speed: float = 10.0,
    gap: float = 8.0,
    cut_time: float = 3.0,
    lane_change_duration: float = 3.0,
    side: str = "left",
    category: str = "car",
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """A vehicle in the adjacent lane (`side` of the ego) changes into the ego lane; its centre crosses the
    lane boundary at `cut_time`, when its rear bumper is `gap` metres ahead of the ego's front bumper."""
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    if cut_time < lane_change_duration / 2:
        raise ValueError("cut_time must be at least half the lane_change_duration")
    w = 3.5
    m = straight_road(
        _road_length(max(ego_speed, cutter_speed), duration), lanes_forward=2, lanes_backward=1, lane_width=w
    )
    rmap = road_map(m)
    ego_lane = "f0" if side == "left" else "f1"
    ego = _ego_on(rmap, [ego_lane], EGO_START_S, ego_speed)
    lane = rmap.lane(ego_lane)
    length = _size(category)[0]
    d0 = w if side == "left" else -w
    s_cross = EGO_START_S + ego_speed * cut_time + _front(ego.vehicle) + gap + length / 2
    s0 = s_cross - cutter_speed * cut_time
    t0 = cut_time - lane_change_duration / 2

    def path(t: float) -> tuple[float, float]:
        d = d0 * (1 - _smoothstep((t - t0) / lane_change_duration))
        x, y = lane.xy(s0 + cutter_speed * t, d)
        return float(x), float(y)

    x, y, yaw = rmap.pose_on_lane(ego_lane, s0, d0)
    cutter = AgentSpec(
        id="cutter",
        category=category,
        pose=Pose(x=x, y=y, yaw=yaw),
        speed=cutter_speed,
        behavior=WaypointsBehavior(points=_waypoints(path, duration)),
    )
    return Scenario(
        name=f"cut_in_{side}",
        description=f"cut-in from the {side} at a {gap:g} m gap, crossing at t={cut_time:g} s",
        tags=["cut_in", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "multi-lane city road"),
        map=m,
        ego=ego,
        agents=[cutter],
    )


def _with_crosswalk(
    m: MapSpec, x: float, half_width: float, road_y: tuple[float, float], cid: str
) -> MapSpec:
    walk = CrosswalkSpec(
        id=cid,
        polygon=[
            (x - half_width, road_y[0]),
            (x + half_width, road_y[0]),
            (x + half_width, road_y[1]),
            (x - half_width, road_y[1]),
        ],
    )
    return m.model_copy(update={"crosswalks": [*m.crosswalks, walk]})


def pedestrian_crossing(
    ego_speed: float = 10.0,
    crosswalk_distance: float = 40.0,
    walker_speed: float = 1.4,
    side: str = "right",
    trigger_distance: float = 30.0,
    category: str = "pedestrian",
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """A pedestrian (or cyclist: category "bicycle") waits at the kerb on `side` and crosses the whole road on
    a crosswalk `crosswalk_distance` metres ahead of the ego front, starting when the ego is within
    `trigger_distance` metres."""
    if side not in ("left", "right"):
        raise ValueError("side must be 'left' or 'right'")
    w, nf, nb = 3.5, 1, 1
    m = straight_road(_road_length(ego_speed, duration, crosswalk_distance), nf, nb, w)
    rmap = road_map(m)
    ego = _ego_on(rmap, ["f0"], EGO_START_S, ego_speed)
    x_cross = EGO_START_S + _front(ego.vehicle) + crosswalk_distance
    m = _with_crosswalk(m, x_cross, 2.0, (-nf * w, nb * w), "crosswalk")
    kerb_gap = 1.5
    y_right, y_left = -nf * w - kerb_gap, nb * w + kerb_gap
    y0, y1 = (y_right, y_left) if side == "right" else (y_left, y_right)
    walk_time = abs(y1 - y0) / walker_speed
    walker = AgentSpec(
        id="walker",
        category=category,
        pose=Pose(x=x_cross, y=y0, yaw=math.copysign(math.pi / 2, y1 - y0)),
        behavior=TriggerBehavior(
            condition=TriggerCondition(ego_distance=trigger_distance),
            before=StaticBehavior(),
            after=WaypointsBehavior(
                points=[Waypoint(t=0.0, x=x_cross, y=y0), Waypoint(t=round(walk_time, 4), x=x_cross, y=y1)]
            ),
        ),
    )
    return Scenario(
        name=f"pedestrian_crossing_{side}",
        description=f"{category} crosses from the {side} on a crosswalk {crosswalk_distance:g} m ahead",
        tags=["pedestrian_crossing", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "city street with a crosswalk"),
        map=m,
        ego=ego,
        agents=[walker],
    )


def jaywalker(
    ego_speed: float = 10.0,
    parked_distance: float = 35.0,
    walker_speed: float = 1.8,
    trigger_distance: float = 22.0,
    occluder: str = "truck",
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """A vehicle parked in the kerb lane `parked_distance` metres ahead hides a pedestrian standing just in
    front of it, who steps out across the ego lane when the ego is within `trigger_distance` metres."""
    w = 3.5
    m = straight_road(_road_length(ego_speed, duration, parked_distance), 2, 1, w)
    rmap = road_map(m)
    ego = _ego_on(rmap, ["f1"], EGO_START_S, ego_speed)
    lane = rmap.lane("f1")
    p_len, p_wid, _ = _size(occluder)
    s_parked = EGO_START_S + _front(ego.vehicle) + parked_distance + p_len / 2
    d_parked = -w - 0.3  # in the kerb lane f0, pulled towards the kerb
    x, y, yaw = rmap.pose_on_lane("f1", s_parked, d_parked)
    parked = AgentSpec(id="parked", category=occluder, pose=Pose(x=x, y=y, yaw=yaw))
    ped_len = _size("pedestrian")[0]
    s_ped = s_parked + p_len / 2 + 0.3 + ped_len / 2
    d_start, d_end = d_parked + p_wid / 2 - ped_len, w / 2 + 1.0  # hidden, then past the ego lane's far edge
    xs, ys = (float(v) for v in lane.xy(s_ped, d_start))
    xe, ye = (float(v) for v in lane.xy(s_ped, d_end))
    walker = AgentSpec(
        id="jaywalker",
        category="pedestrian",
        pose=Pose(x=xs, y=ys, yaw=yaw + math.pi / 2),
        behavior=TriggerBehavior(
            condition=TriggerCondition(ego_distance=trigger_distance),
            after=WaypointsBehavior(
                points=[
                    Waypoint(t=0.0, x=xs, y=ys),
                    Waypoint(t=round((d_end - d_start) / walker_speed, 4), x=xe, y=ye),
                ]
            ),
        ),
    )
    return Scenario(
        name="jaywalker",
        description=f"jaywalker steps out from behind a parked {occluder} {parked_distance:g} m ahead",
        tags=["jaywalker", "occlusion", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "city street with parked vehicles"),
        map=m,
        ego=ego,
        agents=[parked, walker],
    )


def stalled_vehicle(
    ego_speed: float = 12.0,
    distance: float = 50.0,
    category: str = "car",
    lateral_offset: float = 0.0,
    warning_cone: bool = True,
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """A vehicle stands still in the ego lane `distance` metres ahead (shifted by `lateral_offset`, + left),
    optionally with a traffic cone 8 m behind it; the left lane is free for an evasive lane change."""
    w = 3.5
    m = straight_road(_road_length(ego_speed, duration, distance), 2, 1, w)
    rmap = road_map(m)
    ego = _ego_on(rmap, ["f0"], EGO_START_S, ego_speed)
    length = _size(category)[0]
    s = EGO_START_S + _front(ego.vehicle) + distance + length / 2
    x, y, yaw = rmap.pose_on_lane("f0", s, lateral_offset)
    agents = [AgentSpec(id="stalled", category=category, pose=Pose(x=x, y=y, yaw=yaw))]
    if warning_cone:
        cx, cy, _ = rmap.pose_on_lane("f0", s - length / 2 - 8.0, lateral_offset)
        agents.append(AgentSpec(id="cone", category="traffic_cone", pose=Pose(x=cx, y=cy, yaw=yaw)))
    return Scenario(
        name="stalled_vehicle",
        description=f"stalled {category} in the ego lane {distance:g} m ahead",
        tags=["stalled_vehicle", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "two-lane city road"),
        map=m,
        ego=ego,
        agents=agents,
    )


def lead_vehicle_brake(
    ego_speed: float = 13.0,
    lead_speed: float = 13.0,
    time_gap: float = 2.0,
    brake_time: float = 3.0,
    deceleration: float = 6.0,
    category: str = "car",
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """A lead vehicle `time_gap` seconds ahead (gap = time_gap * ego_speed) drives at `lead_speed` and at
    `brake_time` brakes at `deceleration` m/s² to a stop."""
    m = straight_road(_road_length(max(ego_speed, lead_speed), duration), 1, 1)
    rmap = road_map(m)
    ego = _ego_on(rmap, ["f0"], EGO_START_S, ego_speed)
    lane = rmap.lane("f0")
    length = _size(category)[0]
    s0 = EGO_START_S + _front(ego.vehicle) + time_gap * ego_speed + length / 2
    stop_after = lead_speed / deceleration

    def travelled(t: float) -> float:
        if t <= brake_time:
            return lead_speed * t
        tau = min(t - brake_time, stop_after)
        return lead_speed * brake_time + lead_speed * tau - deceleration * tau**2 / 2

    def path(t: float) -> tuple[float, float]:
        x, y = lane.xy(s0 + travelled(t))
        return float(x), float(y)

    x, y, yaw = rmap.pose_on_lane("f0", s0)
    lead = AgentSpec(
        id="lead",
        category=category,
        pose=Pose(x=x, y=y, yaw=yaw),
        speed=lead_speed,
        behavior=WaypointsBehavior(
            points=_waypoints(path, min(duration, brake_time + stop_after + WAYPOINT_STEP))
        ),
    )
    return Scenario(
        name="lead_vehicle_brake",
        description=f"lead {category} {time_gap:g} s ahead brakes at {deceleration:g} m/s² at t={brake_time:g} s",
        tags=["lead_vehicle_brake", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "city road"),
        map=m,
        ego=ego,
        agents=[lead],
    )


def oncoming_invasion(
    ego_speed: float = 12.0,
    oncoming_speed: float = 12.0,
    meet_time: float = 5.0,
    invasion: float = 1.2,
    peak_time: float = 3.5,
    excursion_duration: float = 4.0,
    category: str = "car",
    duration: float = 12.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """An oncoming vehicle on a two-way road swerves over the centre line: at `peak_time` its near side is
    `invasion` metres inside the ego lane. Fronts would pass each other at `meet_time` at constant speeds."""
    w = 3.5
    m = straight_road(_road_length(ego_speed, duration, oncoming_speed * duration), 1, 1, w)
    rmap = road_map(m)
    ego = _ego_on(rmap, ["f0"], EGO_START_S, ego_speed)
    lane = rmap.lane("f0")
    length, width, _ = _size(category)
    ego_front = EGO_START_S + _front(ego.vehicle)
    s0 = ego_front + (ego_speed + oncoming_speed) * meet_time + length / 2  # oncoming centre, in ego-lane s
    if s0 + length > lane.length:
        raise ValueError("meet_time too long for the road")
    d_min = w / 2 - invasion + width / 2  # centre offset at the peak, ego-lane frame
    t_start = peak_time - excursion_duration / 2
    if t_start < 0:
        raise ValueError("peak_time must be at least half the excursion_duration")

    def path(t: float) -> tuple[float, float]:
        bump = math.sin(math.pi * min(max((t - t_start) / excursion_duration, 0.0), 1.0)) ** 2
        x, y = lane.xy(s0 - oncoming_speed * t, w - (w - d_min) * bump)
        return float(x), float(y)

    x, y, yaw = rmap.pose_on_lane("f0", s0, w)
    oncoming = AgentSpec(
        id="oncoming",
        category=category,
        pose=Pose(x=x, y=y, yaw=yaw + math.pi),
        speed=oncoming_speed,
        behavior=WaypointsBehavior(points=_waypoints(path, min(duration, s0 / oncoming_speed - 1.0))),
    )
    return Scenario(
        name="oncoming_invasion",
        description=f"oncoming {category} crosses {invasion:g} m into the ego lane at t={peak_time:g} s",
        tags=["oncoming_invasion", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "two-lane rural road"),
        map=m,
        ego=ego,
        agents=[oncoming],
    )


def _place_on_route(rmap: RoadMap, route: list[str], s: float) -> tuple[list[str], float, float, float]:
    """A position s metres along a successor-linked route -> (remaining route, x, y, yaw)."""
    if s < 0:
        raise ValueError("an agent would start before the start of its route; change the timing parameters")
    for k, lane_id in enumerate(route):
        lane = rmap.lane(lane_id)
        if s <= lane.length or k == len(route) - 1:
            x, y, yaw = rmap.pose_on_lane(lane_id, min(s, lane.length))
            return route[k:], x, y, yaw
        s -= lane.length
    raise AssertionError("unreachable")


def conflict_point(
    rmap: RoadMap, route_a: list[str], route_b: list[str]
) -> tuple[float, float, float, float]:
    """First crossing of two routes' paths: (x, y, s along a, s along b)."""
    from shapely.geometry import LineString

    a, b = LineString(rmap.route_path(route_a)), LineString(rmap.route_path(route_b))
    hit = a.intersection(b)
    if hit.is_empty:
        raise ValueError("the routes do not cross")
    points = list(getattr(hit, "geoms", [hit]))
    first = min(points, key=lambda p: a.project(p))
    return first.x, first.y, a.project(first), b.project(first)


def unprotected_left_turn(
    ego_speed: float = 8.0,
    oncoming_speed: float = 10.0,
    time_gap: float = 2.0,
    approach_distance: float = 30.0,
    category: str = "car",
    duration: float = 14.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """At a 4-way intersection the ego turns left from the south arm while an oncoming vehicle drives
    straight through from the north; at constant speeds it reaches the crossing point `time_gap` seconds
    after the ego (negative = before). The ego's rear axle starts `approach_distance` metres before the end of
    its lane."""
    m = four_way_intersection(1)
    rmap = road_map(m)
    ego_route = ["south_in_0", "south_left_0", "west_out_0"]
    onc_route = ["north_in_0", "north_straight_0", "south_out_0"]
    s_ego0 = rmap.lane("south_in_0").length - approach_distance
    if s_ego0 < 0:
        raise ValueError("approach_distance longer than the approach lane")
    ego = _ego_on(rmap, ego_route, s_ego0, ego_speed)
    _, _, s_a, s_b = conflict_point(rmap, ego_route, onc_route)
    t_ego = (s_a - s_ego0) / ego_speed
    route, x, y, yaw = _place_on_route(rmap, onc_route, s_b - oncoming_speed * (t_ego + time_gap))
    oncoming = AgentSpec(
        id="oncoming",
        category=category,
        pose=Pose(x=x, y=y, yaw=yaw),
        speed=oncoming_speed,
        behavior=IdmBehavior(route=route, desired_speed=oncoming_speed),
    )
    return Scenario(
        name="unprotected_left_turn",
        description=f"left turn across oncoming traffic arriving {time_gap:g} s after the ego",
        tags=["unprotected_left_turn", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "urban intersection"),
        map=m,
        ego=ego,
        agents=[oncoming],
    )


def merge(
    ego_speed: float = 18.0,
    main_speed: float = 22.0,
    main_gap: float = 30.0,
    num_main: int = 4,
    gap_offset: float = 0.0,
    category: str = "car",
    duration: float = 16.0,
    time_of_day: str = "day",
    weather: str = "clear",
) -> Scenario:
    """The ego comes up an on-ramp and must merge into the right lane, where `num_main` vehicles follow each
    other `main_gap` metres apart (bumper to bumper) at `main_speed`. At constant speeds, when the ego reaches
    the end of the acceleration lane the middle of a gap is `gap_offset` metres ahead of the ego's centre."""
    m = on_ramp_merge(length=650.0, merge_start=300.0)
    rmap = road_map(m)
    ego_route = ["ramp", "acc", "f0_c"]
    ego = _ego_on(rmap, ego_route, 10.0, ego_speed)
    length = _size(category)[0]
    s_merge = rmap.lane("ramp").length + rmap.lane("acc").length  # acc end = start of f0_c
    t_merge = (s_merge - 10.0 - ego.vehicle.center_offset) / ego_speed
    x_merge = rmap.lane("f0_c").points[0][0]
    pitch = main_gap + length
    k_gap = num_main // 2  # the ego aims between vehicle k_gap - 1 and k_gap (0 = front)
    gap_mid_at_merge = x_merge + gap_offset
    main_route = ["f0_a", "f0_b", "f0_c"]
    headway = max(0.5, 0.9 * (main_gap - 2.0) / main_speed)
    agents = []
    for k in range(num_main):
        centre_at_merge = gap_mid_at_merge + (k_gap - k - 0.5) * pitch
        s_start = centre_at_merge - main_speed * t_merge  # x of f0 lanes starts at 0
        route, x, y, yaw = _place_on_route(rmap, main_route, s_start)
        agents.append(
            AgentSpec(
                id=f"main_{k}",
                category=category,
                pose=Pose(x=x, y=y, yaw=yaw),
                speed=main_speed,
                behavior=IdmBehavior(route=route, desired_speed=main_speed, time_headway=headway),
            )
        )
    return Scenario(
        name="merge",
        description=f"on-ramp merge into traffic at {main_speed:g} m/s with {main_gap:g} m gaps",
        tags=["merge", "edge_case"],
        duration=duration,
        scene=_scene(time_of_day, weather, "highway on-ramp"),
        map=m,
        ego=ego,
        agents=agents,
    )


BUILDERS: dict[str, Callable[..., Scenario]] = {
    "cut_in": cut_in,
    "pedestrian_crossing": pedestrian_crossing,
    "jaywalker": jaywalker,
    "stalled_vehicle": stalled_vehicle,
    "lead_vehicle_brake": lead_vehicle_brake,
    "oncoming_invasion": oncoming_invasion,
    "unprotected_left_turn": unprotected_left_turn,
    "merge": merge,
}


def sweep(builder: Callable[..., Scenario] | str, grid: dict[str, list], **fixed) -> list[Scenario]:
    """One scenario per combination of the `grid` values (plus `fixed` parameters), named after them."""
    fn = BUILDERS[builder] if isinstance(builder, str) else builder
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values))
        sc = fn(**fixed, **params)
        suffix = "_".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        out.append(sc.model_copy(update={"name": f"{sc.name}__{suffix}" if suffix else sc.name}))
    return out
