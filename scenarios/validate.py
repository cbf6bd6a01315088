"""Cross-field checks of a scenario: unique ids, lane references, routes, agents on the map, overlaps at t=0."""

from __future__ import annotations

import math
from collections.abc import Iterator

from cvd_sim.scenarios.boxes import agent_polygon, ego_center, ego_polygon
from cvd_sim.scenarios.categories import CATEGORIES, category_id
from cvd_sim.scenarios.errors import Problem, ScenarioError
from cvd_sim.scenarios.map_queries import Polyline2D, RoadMap, road_map
from cvd_sim.scenarios.schema import (
    IdmBehavior,
    MapSpec,
    Scenario,
    StaticBehavior,
    TriggerBehavior,
    Waypoint,
    WaypointsBehavior,
)
from shapely.geometry import Point, Polygon

VEHICLE_ON_MAP_TOLERANCE = 1.5  # m a vehicle centre may lie outside the drivable area (parked at the kerb)
OTHER_ON_MAP_TOLERANCE = 15.0  # m a pedestrian or object may stand off the drivable area (sidewalks)
LANE_START_TOLERANCE = 1.0  # m beyond its lane an IDM agent may start
WAYPOINT_START_TOLERANCE = 1.0  # m between an agent's pose and the first waypoint it follows
OVERLAP_AREA = 1e-3  # m^2


def _duplicates(ids: list[str]) -> Iterator[int]:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            yield i
        seen.add(x)


def map_problems(spec: MapSpec, prefix: str = "map") -> list[tuple[str, str]]:
    """(field path, reason) for every problem of a map that the schema alone cannot see."""
    out: list[tuple[str, str]] = []
    groups = {
        "lanes": spec.lanes,
        "road_lines": spec.road_lines,
        "road_edges": spec.road_edges,
        "crosswalks": spec.crosswalks,
        "stop_lines": spec.stop_lines,
    }
    for name, items in groups.items():
        for i in _duplicates([x.id for x in items]):
            out.append((f"{prefix}.{name}.{i}.id", f"duplicate id {items[i].id!r}"))
    lane_ids = set(spec.lane_ids())
    for i, lane in enumerate(spec.lanes):
        for key in ("successors", "predecessors", "left_neighbors", "right_neighbors"):
            for j, ref in enumerate(getattr(lane, key)):
                if ref not in lane_ids:
                    out.append((f"{prefix}.lanes.{i}.{key}.{j}", f"unknown lane {ref!r}"))
                elif ref == lane.id:
                    out.append((f"{prefix}.lanes.{i}.{key}.{j}", "a lane cannot reference itself"))
        for key in ("centerline", "left_boundary", "right_boundary"):
            line = getattr(lane, key)
            if line is not None and not _has_length(line):
                out.append((f"{prefix}.lanes.{i}.{key}", "polyline has zero length"))
    for name in ("road_lines", "road_edges", "stop_lines"):
        for i, item in enumerate(groups[name]):
            if not _has_length(item.polyline):
                out.append((f"{prefix}.{name}.{i}.polyline", "polyline has zero length"))
    for i, stop in enumerate(spec.stop_lines):
        for j, ref in enumerate(stop.lanes):
            if ref not in lane_ids:
                out.append((f"{prefix}.stop_lines.{i}.lanes.{j}", f"unknown lane {ref!r}"))
    for i, cw in enumerate(spec.crosswalks):
        if Polygon(cw.polygon).buffer(0).area <= 1e-6:
            out.append((f"{prefix}.crosswalks.{i}.polygon", "polygon has zero area"))
    return out


def _has_length(points) -> bool:
    try:
        return Polyline2D(points).length > 1e-6
    except ValueError:
        return False


def _starts_on(rmap: RoadMap, lane_id: str, x: float, y: float) -> bool:
    """Whether (x, y) lies on the lane (within LANE_START_TOLERANCE of its surface)."""
    lane = rmap.lane(lane_id)
    s, d = (float(v) for v in lane.frenet([x, y]))
    return (
        abs(d) <= lane.width / 2 + LANE_START_TOLERANCE
        and -LANE_START_TOLERANCE <= s <= lane.length + LANE_START_TOLERANCE
    )


def _first_scripted_point(behavior) -> Waypoint | None:
    """The first waypoint an agent follows from its initial pose (untriggered, or triggered while static)."""
    if isinstance(behavior, TriggerBehavior):
        behavior = behavior.after if isinstance(behavior.before, StaticBehavior) else None
    return behavior.points[0] if isinstance(behavior, WaypointsBehavior) else None


def _route_problems(rmap: RoadMap, route: list[str], path: str) -> list[tuple[str, str]]:
    out = []
    for j, lane_id in enumerate(route):
        if lane_id not in rmap.lanes:
            out.append((f"{path}.{j}", f"unknown lane {lane_id!r}"))
    if out:
        return out
    for j in range(1, len(route)):
        if rmap.link_kind(route[j - 1], route[j]) is None:
            out.append((f"{path}.{j}", f"lane {route[j]!r} neither follows nor neighbours {route[j - 1]!r}"))
    return out


def scenario_problems(sc: Scenario) -> list[tuple[str, str]]:
    """(field path, reason) for every cross-field problem of a scenario."""
    out = map_problems(sc.map)
    if out:
        return out  # the map must be sound before anything is placed on it
    rmap = road_map(sc.map)
    if sc.dt > sc.duration:
        out.append(("dt", f"dt {sc.dt} is longer than the duration {sc.duration}"))

    # ego
    out += _route_problems(rmap, sc.ego.route, "ego.route")  # the ego may start off its route (a test)
    ego_poly = ego_polygon(sc.ego)
    if not rmap.on_drivable_area(ego_poly.centroid, VEHICLE_ON_MAP_TOLERANCE):
        cx, cy = ego_center(sc.ego)
        out.append(("ego.pose", f"the ego at ({cx:.1f}, {cy:.1f}) is not on the drivable area"))
    if sc.ego.goal is not None:
        if not rmap.on_drivable_area(Point(sc.ego.goal), VEHICLE_ON_MAP_TOLERANCE):
            out.append(("ego.goal", "the goal is not on the drivable area"))

    # agents
    for i in _duplicates([a.id for a in sc.agents]):
        out.append((f"agents.{i}.id", f"duplicate id {sc.agents[i].id!r}"))
    for i, agent in enumerate(sc.agents):
        if agent.id == "ego":
            out.append((f"agents.{i}.id", "'ego' is reserved for the ego vehicle"))
        poly = agent_polygon(agent)
        is_vehicle = CATEGORIES[category_id(agent.category)].is_vehicle
        tol = VEHICLE_ON_MAP_TOLERANCE if is_vehicle else OTHER_ON_MAP_TOLERANCE
        if not rmap.on_drivable_area(poly.centroid, tol):
            out.append(
                (f"agents.{i}.pose", f"agent {agent.id!r} starts off the map (> {tol} m from the road)")
            )
        behaviours = [("behavior", agent.behavior)]
        if isinstance(agent.behavior, TriggerBehavior):
            behaviours = [
                ("behavior.before", agent.behavior.before),
                ("behavior.after", agent.behavior.after),
            ]
        for path, beh in behaviours:
            if not isinstance(beh, IdmBehavior):
                continue
            problems = _route_problems(rmap, beh.route, f"agents.{i}.{path}.route")
            out += problems
            if problems:
                continue
            if path in ("behavior", "behavior.before") and not _starts_on(
                rmap, beh.route[0], agent.pose.x, agent.pose.y
            ):
                out.append(
                    (f"agents.{i}.pose", f"agent {agent.id!r} does not start on lane {beh.route[0]!r}")
                )
        first = _first_scripted_point(agent.behavior)
        if (
            first is not None
            and math.hypot(first.x - agent.pose.x, first.y - agent.pose.y) > WAYPOINT_START_TOLERANCE
        ):
            out.append(
                (
                    f"agents.{i}.behavior",
                    f"the first waypoint of {agent.id!r} is not at its initial pose (it would jump)",
                )
            )

    # overlaps at t=0
    boxes = [("ego", "ego.pose", ego_poly, False)]
    boxes += [(a.id, f"agents.{i}.pose", agent_polygon(a), a.allow_overlap) for i, a in enumerate(sc.agents)]
    for j in range(1, len(boxes)):
        for k in range(j):
            (name_j, path_j, poly_j, ok_j), (name_k, _, poly_k, ok_k) = boxes[j], boxes[k]
            if ok_j or ok_k:
                continue
            if poly_j.intersection(poly_k).area > OVERLAP_AREA:
                out.append(
                    (path_j, f"{name_j!r} overlaps {name_k!r} at t=0 (set allow_overlap: true if intended)")
                )
    return out


def raise_if_invalid(sc: Scenario, file: str = "<memory>") -> None:
    """Raise `ScenarioError` listing every cross-field problem of `sc`."""
    problems = scenario_problems(sc)
    if problems:
        raise ScenarioError([Problem(file, path, reason) for path, reason in problems])
