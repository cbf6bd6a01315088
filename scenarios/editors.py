"""Editors for boxes (agents, ego) and maps. Every edit is validated at once; a bad edit raises
`ScenarioError` and leaves the editor unchanged.

Positions are given as `x=, y=` or as `lane=, s=, offset=` (Frenet on that lane; yaw then defaults to
the lane heading).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from cvd_sim.scenarios.errors import Problem, ScenarioError
from cvd_sim.scenarios.io import problems_from_validation_error, scenario_from_dict
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import MapSpec, Scenario
from cvd_sim.scenarios.validate import map_problems
from pydantic import ValidationError

_MAP_GROUPS = {
    "lanes": "centerline",
    "road_lines": "polyline",
    "road_edges": "polyline",
    "crosswalks": "polygon",
    "stop_lines": "polyline",
}
_EDIT = "<edit>"


def _fail(field: str, reason: str) -> ScenarioError:
    return ScenarioError([Problem(_EDIT, field, reason)])


def _validate_map(data: dict) -> MapSpec:
    try:
        spec = MapSpec.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(problems_from_validation_error(err, _EDIT)) from None
    problems = map_problems(spec)
    if problems:
        raise ScenarioError([Problem(_EDIT, f, r) for f, r in problems])
    return spec


# ---------------------------------------------------------------- pure map functions


def _transform_points(points, dx: float, dy: float, dyaw: float) -> list[tuple[float, float]]:
    c, s = math.cos(dyaw), math.sin(dyaw)
    p = np.asarray(points, dtype=np.float64)
    out = np.column_stack([c * p[:, 0] - s * p[:, 1] + dx, s * p[:, 0] + c * p[:, 1] + dy])
    return [(float(x), float(y)) for x, y in out]


def transform_map(spec: MapSpec, dx: float = 0.0, dy: float = 0.0, dyaw: float = 0.0) -> MapSpec:
    """The map rotated by `dyaw` about the origin, then shifted by (dx, dy)."""
    data = spec.model_dump()
    for group, key in _MAP_GROUPS.items():
        for item in data[group]:
            item[key] = _transform_points(item[key], dx, dy, dyaw)
            if group == "lanes":
                for side in ("left_boundary", "right_boundary"):
                    if item[side] is not None:
                        item[side] = _transform_points(item[side], dx, dy, dyaw)
    return _validate_map(data)


def merge_maps(a: MapSpec, b: MapSpec, prefix: str = "") -> MapSpec:
    """One map holding both; ids of `b` get `prefix` (their references too). Clashing ids are an error."""
    data_b = b.model_dump()
    if prefix:
        for group in _MAP_GROUPS:
            for item in data_b[group]:
                item["id"] = prefix + item["id"]
        for lane in data_b["lanes"]:
            for key in ("successors", "predecessors", "left_neighbors", "right_neighbors"):
                lane[key] = [prefix + r for r in lane[key]]
        for stop in data_b["stop_lines"]:
            stop["lanes"] = [prefix + r for r in stop["lanes"]]
    data = a.model_dump()
    data["name"] = f"{a.name}+{b.name}" if a.name or b.name else ""
    for group in _MAP_GROUPS:
        data[group] = data[group] + data_b[group]
    return _validate_map(data)


# ---------------------------------------------------------------- the editor


class ScenarioEditor:
    """Holds a scenario and applies validated edits to it. Methods return the editor, so edits chain."""

    def __init__(self, scenario: Scenario):
        self._scenario = scenario

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    def _commit(self, data: dict) -> ScenarioEditor:
        self._scenario = scenario_from_dict(data, _EDIT)
        return self

    def _data(self) -> dict:
        return copy.deepcopy(self._scenario.model_dump(mode="json"))

    def _agent_index(self, data: dict, agent_id: str) -> int:
        for i, agent in enumerate(data["agents"]):
            if agent["id"] == agent_id:
                return i
        raise _fail("agents", f"no agent {agent_id!r}")

    def _resolve(self, field: str, x, y, lane, s, offset) -> tuple[float, float, float | None]:
        """(x, y, lane heading or None) from xy or lane + s + offset."""
        if lane is not None:
            if s is None:
                raise _fail(field, "a lane position needs s")
            rmap = road_map(self._scenario.map)
            if lane not in rmap.lanes:
                raise _fail(field, f"unknown lane {lane!r}")
            px, py, yaw = rmap.pose_on_lane(lane, float(s), float(offset or 0.0))
            return px, py, yaw
        if x is None or y is None:
            raise _fail(field, "give x and y, or lane and s")
        return float(x), float(y), None

    # ------------------------------------------------------------ boxes

    def add_agent(
        self,
        id: str,
        category: str = "car",
        *,
        x: float | None = None,
        y: float | None = None,
        lane: str | None = None,
        s: float | None = None,
        offset: float = 0.0,
        yaw: float | None = None,
        speed: float = 0.0,
        size: tuple[float, float, float] | None = None,
        behavior: dict | None = None,
        allow_overlap: bool = False,
    ) -> ScenarioEditor:
        data = self._data()
        if any(a["id"] == id for a in data["agents"]):
            raise _fail("agents", f"an agent {id!r} exists already")
        px, py, lane_yaw = self._resolve(f"agents.{len(data['agents'])}.pose", x, y, lane, s, offset)
        agent = {
            "id": id,
            "category": category,
            "size": list(size) if size is not None else None,
            "pose": {"x": px, "y": py, "yaw": yaw if yaw is not None else (lane_yaw or 0.0)},
            "speed": speed,
            "behavior": behavior or {"type": "static"},
            "allow_overlap": allow_overlap,
        }
        data["agents"].append(agent)
        return self._commit(data)

    def move_agent(
        self, id: str, *, x=None, y=None, lane=None, s=None, offset=0.0, yaw=None
    ) -> ScenarioEditor:
        data = self._data()
        i = self._agent_index(data, id)
        px, py, lane_yaw = self._resolve(f"agents.{i}.pose", x, y, lane, s, offset)
        old = data["agents"][i]["pose"]
        data["agents"][i]["pose"] = {
            "x": px,
            "y": py,
            "yaw": yaw if yaw is not None else lane_yaw if lane_yaw is not None else old["yaw"],
        }
        return self._commit(data)

    def rotate_agent(self, id: str, yaw: float | None = None, delta: float | None = None) -> ScenarioEditor:
        """Set the heading (`yaw`) or turn it by `delta` radians."""
        if (yaw is None) == (delta is None):
            raise _fail("agents", "give exactly one of yaw or delta")
        data = self._data()
        i = self._agent_index(data, id)
        pose = data["agents"][i]["pose"]
        pose["yaw"] = float(yaw) if yaw is not None else pose["yaw"] + float(delta)
        return self._commit(data)

    def resize_agent(self, id: str, length=None, width=None, height=None) -> ScenarioEditor:
        data = self._data()
        i = self._agent_index(data, id)
        dims = list(self._scenario.agent(id).dims)
        for k, v in enumerate((length, width, height)):
            if v is not None:
                dims[k] = float(v)
        data["agents"][i]["size"] = dims
        return self._commit(data)

    def remove_agent(self, id: str) -> ScenarioEditor:
        data = self._data()
        del data["agents"][self._agent_index(data, id)]
        return self._commit(data)

    def clone_agent(
        self, id: str, new_id: str, *, x=None, y=None, lane=None, s=None, offset=0.0, yaw=None, behavior=None
    ) -> ScenarioEditor:
        """Copy an agent (size, speed, and its behaviour unless `behavior` is given) to a new id and position."""
        data = self._data()
        i = self._agent_index(data, id)
        if any(a["id"] == new_id for a in data["agents"]):
            raise _fail("agents", f"an agent {new_id!r} exists already")
        clone = copy.deepcopy(data["agents"][i])
        px, py, lane_yaw = self._resolve(f"agents.{len(data['agents'])}.pose", x, y, lane, s, offset)
        clone["id"] = new_id
        if behavior is not None:
            clone["behavior"] = behavior
        clone["pose"] = {
            "x": px,
            "y": py,
            "yaw": yaw if yaw is not None else lane_yaw if lane_yaw is not None else clone["pose"]["yaw"],
        }
        data["agents"].append(clone)
        return self._commit(data)

    def set_behavior(self, id: str, behavior: dict[str, Any]) -> ScenarioEditor:
        data = self._data()
        data["agents"][self._agent_index(data, id)]["behavior"] = behavior
        return self._commit(data)

    def set_trajectory(self, id: str, points: list, interpolation: str = "linear") -> ScenarioEditor:
        """Scripted path: `points` = [(t, x, y)] or [(t, x, y, yaw)]."""
        waypoints = []
        for p in points:
            if len(p) not in (3, 4):
                raise _fail("agents", "each trajectory point is (t, x, y) or (t, x, y, yaw)")
            waypoints.append({"t": p[0], "x": p[1], "y": p[2], "yaw": p[3] if len(p) == 4 else None})
        return self.set_behavior(
            id, {"type": "waypoints", "points": waypoints, "interpolation": interpolation}
        )

    def set_ego(
        self, *, x=None, y=None, lane=None, s=None, offset=0.0, yaw=None, speed=None, route=None, goal=None
    ) -> ScenarioEditor:
        """Move the ego (rear axle) and/or set its speed, route (lane ids) or goal (x, y)."""
        data = self._data()
        ego = data["ego"]
        if x is not None or lane is not None:
            px, py, lane_yaw = self._resolve("ego.pose", x, y, lane, s, offset)
            ego["pose"] = {
                "x": px,
                "y": py,
                "yaw": yaw if yaw is not None else lane_yaw if lane_yaw is not None else ego["pose"]["yaw"],
            }
        elif yaw is not None:
            ego["pose"]["yaw"] = float(yaw)
        if speed is not None:
            ego["speed"] = speed
        if route is not None:
            ego["route"] = list(route)
        if goal is not None:
            ego["goal"] = list(goal)
        return self._commit(data)

    # ------------------------------------------------------------ map

    def add_lane(self, id: str, centerline: list, **fields) -> ScenarioEditor:
        """Add a lane; `fields` are LaneSpec fields (width, successors, ...). Links named in successors /
        predecessors are mirrored on the other lanes."""
        data = self._data()
        lanes = data["map"]["lanes"]
        if any(lane["id"] == id for lane in lanes):
            raise _fail("map.lanes", f"a lane {id!r} exists already")
        lane = {"id": id, "centerline": [list(p) for p in centerline], **fields}
        by_id = {other["id"]: other for other in lanes}
        for ref in lane.get("successors", []):
            if ref in by_id and id not in by_id[ref]["predecessors"]:
                by_id[ref]["predecessors"].append(id)
        for ref in lane.get("predecessors", []):
            if ref in by_id and id not in by_id[ref]["successors"]:
                by_id[ref]["successors"].append(id)
        lanes.append(lane)
        return self._commit(data)

    def remove_lane(self, id: str) -> ScenarioEditor:
        """Remove a lane and every map reference to it (routes that use it become errors)."""
        data = self._data()
        lanes = data["map"]["lanes"]
        if not any(lane["id"] == id for lane in lanes):
            raise _fail("map.lanes", f"no lane {id!r}")
        data["map"]["lanes"] = [lane for lane in lanes if lane["id"] != id]
        for lane in data["map"]["lanes"]:
            for key in ("successors", "predecessors", "left_neighbors", "right_neighbors"):
                lane[key] = [r for r in lane[key] if r != id]
        for stop in data["map"]["stop_lines"]:
            stop["lanes"] = [r for r in stop["lanes"] if r != id]
        return self._commit(data)

    def reshape(self, group: str, id: str, points: list) -> ScenarioEditor:
        """Replace the polyline (polygon for crosswalks) of a map feature; group is lanes, road_lines,
        road_edges, crosswalks or stop_lines."""
        if group not in _MAP_GROUPS:
            raise _fail("map", f"unknown map group {group!r}; known: {', '.join(_MAP_GROUPS)}")
        data = self._data()
        for item in data["map"][group]:
            if item["id"] == id:
                item[_MAP_GROUPS[group]] = [list(p) for p in points]
                return self._commit(data)
        raise _fail(f"map.{group}", f"no {group[:-1].replace('_', ' ')} {id!r}")

    def add_road_line(self, id: str, polyline: list, type: str = "broken_single_white") -> ScenarioEditor:
        return self._add_feature("road_lines", {"id": id, "polyline": polyline, "type": type})

    def add_road_edge(self, id: str, polyline: list, type: str = "boundary") -> ScenarioEditor:
        return self._add_feature("road_edges", {"id": id, "polyline": polyline, "type": type})

    def add_crosswalk(self, id: str, polygon: list) -> ScenarioEditor:
        return self._add_feature("crosswalks", {"id": id, "polygon": polygon})

    def add_stop_line(self, id: str, polyline: list, lanes: list[str] | None = None) -> ScenarioEditor:
        return self._add_feature("stop_lines", {"id": id, "polyline": polyline, "lanes": list(lanes or [])})

    def remove_feature(self, group: str, id: str) -> ScenarioEditor:
        """Remove a road line, road edge, crosswalk or stop line (lanes: use `remove_lane`)."""
        if group not in _MAP_GROUPS or group == "lanes":
            raise _fail(
                "map", f"group must be one of road_lines, road_edges, crosswalks, stop_lines, not {group!r}"
            )
        data = self._data()
        kept = [item for item in data["map"][group] if item["id"] != id]
        if len(kept) == len(data["map"][group]):
            raise _fail(f"map.{group}", f"no feature {id!r}")
        data["map"][group] = kept
        return self._commit(data)

    def _add_feature(self, group: str, item: dict) -> ScenarioEditor:
        data = self._data()
        if any(f["id"] == item["id"] for f in data["map"][group]):
            raise _fail(f"map.{group}", f"an item {item['id']!r} exists already")
        data["map"][group].append(item)
        return self._commit(data)

    def transform(self, dx: float = 0.0, dy: float = 0.0, dyaw: float = 0.0) -> ScenarioEditor:
        """Rotate (about the origin) and shift the whole scenario: map, agents, ego, waypoints, goal."""
        data = self._data()
        data["map"] = transform_map(self._scenario.map, dx, dy, dyaw).model_dump(mode="json")

        def pose(p: dict) -> None:
            ((p["x"], p["y"]),) = _transform_points([(p["x"], p["y"])], dx, dy, dyaw)
            p["yaw"] = p["yaw"] + dyaw

        pose(data["ego"]["pose"])
        if data["ego"]["goal"] is not None:
            data["ego"]["goal"] = list(_transform_points([data["ego"]["goal"]], dx, dy, dyaw)[0])
        for agent in data["agents"]:
            pose(agent["pose"])
            behaviours = [agent["behavior"]]
            if agent["behavior"]["type"] == "trigger":
                behaviours = [agent["behavior"]["before"], agent["behavior"]["after"]]
            for beh in behaviours:
                for p in beh.get("points", []) if beh["type"] == "waypoints" else []:
                    ((p["x"], p["y"]),) = _transform_points([(p["x"], p["y"])], dx, dy, dyaw)
                    if p["yaw"] is not None:
                        p["yaw"] += dyaw
        return self._commit(data)

    def merge_map(self, other: MapSpec, prefix: str = "") -> ScenarioEditor:
        """Add another map's features (ids prefixed by `prefix`)."""
        data = self._data()
        data["map"] = merge_maps(self._scenario.map, other, prefix).model_dump(mode="json")
        return self._commit(data)
