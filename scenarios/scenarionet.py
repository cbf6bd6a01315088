"""ScenarioNet scenario dicts (and their pickle files), read and written without metadrive/scenarionet.

A ScenarioNet scenario holds a map (`map_features`) and per-frame tracks; ours holds a map, initial
states and behaviours. Export samples our open-loop trajectories (`trajectories.py`) at dt; what only we
hold (behaviours, scene text, ego vehicle and route, camera rig) rides along under `metadata["cvd_sim"]`
and the per-track `metadata["cvd_sim_behavior"]`, so our -> ScenarioNet -> ours is exact. Importing a
foreign file turns each track into timed waypoints (static when it does not move) and derives the ego
route from the SDC's path; tracks not valid in the first frame cannot be held by our format and are
reported as skipped.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from cvd_sim.scenarios.categories import CATEGORIES, CATEGORY_NAMES, category_id
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.io import scenario_from_dict, scenario_to_dict
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import SCHEMA_VERSION, MapSpec, Scenario
from cvd_sim.scenarios.trajectories import agent_states, ego_center_states, scenario_times
from cvd_sim.scenarios.validate import OTHER_ON_MAP_TOLERANCE, VEHICLE_ON_MAP_TOLERANCE
from shapely.geometry import Point

SN_VERSION = "2023-11-10"  # ScenarioNet/MetaDrive scenario description version written in `version`
STILL_THRESHOLD = 0.2  # m a track may move and still be imported as static
TRACK_TYPES = {
    "car": "VEHICLE",
    "truck": "VEHICLE",
    "bus": "VEHICLE",
    "pedestrian": "PEDESTRIAN",
    "bicycle": "CYCLIST",
    "motorcycle": "CYCLIST",
    "traffic_cone": "TRAFFIC_CONE",
    "barrier": "TRAFFIC_BARRIER",
}


def _poly3(points) -> np.ndarray:
    """[N, 2] points -> float32 [N, 3] with z = 0 (ScenarioNet polylines)."""
    p = np.asarray(points, dtype=np.float64)
    return np.column_stack([p, np.zeros(len(p))])


def _poly2(array) -> list[tuple[float, float]]:
    a = np.asarray(array, dtype=np.float64).reshape(len(array), -1)
    return [(float(x), float(y)) for x, y in a[:, :2]]


# ---------------------------------------------------------------- export


def map_to_features(spec: MapSpec) -> dict[str, dict[str, Any]]:
    """Our map -> ScenarioNet `map_features` (ids kept as keys)."""
    out: dict[str, dict[str, Any]] = {}
    for lane in spec.lanes:
        feature = {
            "type": f"LANE_{lane.type.upper()}",
            "polyline": _poly3(lane.centerline),
            "entry_lanes": list(lane.predecessors),
            "exit_lanes": list(lane.successors),
            "left_neighbor": list(lane.left_neighbors),
            "right_neighbor": list(lane.right_neighbors),
            "speed_limit_kmh": lane.speed_limit * 3.6,
            "width": np.full(len(lane.centerline), lane.width),
        }
        if lane.left_boundary is not None:
            feature["left_boundary"] = _poly3(lane.left_boundary)
            feature["right_boundary"] = _poly3(lane.right_boundary)
        out[lane.id] = feature
    for line in spec.road_lines:
        out[line.id] = {"type": f"ROAD_LINE_{line.type.upper()}", "polyline": _poly3(line.polyline)}
    for edge in spec.road_edges:
        out[edge.id] = {"type": f"ROAD_EDGE_{edge.type.upper()}", "polyline": _poly3(edge.polyline)}
    for walk in spec.crosswalks:
        out[walk.id] = {"type": "CROSSWALK", "polygon": np.asarray(walk.polygon, dtype=np.float64)}
    for stop in spec.stop_lines:
        mid = np.asarray(stop.polyline, dtype=np.float64).mean(axis=0)
        out[stop.id] = {
            "type": "STOP_SIGN",
            "position": np.array([mid[0], mid[1], 0.0]),
            "lane": list(stop.lanes),
            "polyline": _poly3(stop.polyline),
        }
    return out


def _track(states: np.ndarray, dims, kind: str, object_id: str, extra: dict) -> dict[str, Any]:
    n = len(states)
    length, width, height = dims
    velocity = states[:, 3:4] * np.column_stack([np.cos(states[:, 2]), np.sin(states[:, 2])])
    return {
        "type": kind,
        "state": {
            "position": np.column_stack([states[:, :2], np.full(n, height / 2)]),
            "heading": states[:, 2].copy(),
            "velocity": velocity,
            "valid": np.ones(n, dtype=bool),
            "length": np.full(n, length),
            "width": np.full(n, width),
            "height": np.full(n, height),
        },
        "metadata": {"track_length": n, "type": kind, "object_id": object_id, "dataset": "cvd_sim", **extra},
    }


def to_scenarionet(sc: Scenario) -> dict[str, Any]:
    """Our scenario -> a ScenarioNet scenario dict (open-loop tracks sampled every dt)."""
    times = scenario_times(sc)
    tracks = {}
    v = sc.ego.vehicle
    tracks["ego"] = _track(ego_center_states(sc, times), (v.length, v.width, v.height), "VEHICLE", "ego", {})
    for agent in sc.agents:
        extra = {
            "cvd_sim_category": agent.category,
            "cvd_sim_behavior": agent.behavior.model_dump(mode="json"),
            "cvd_sim_size_given": agent.size is not None,
            "cvd_sim_allow_overlap": agent.allow_overlap,
            "cvd_sim_speed": agent.speed,
            "cvd_sim_pose": agent.pose.model_dump(),
        }
        tracks[agent.id] = _track(
            agent_states(sc, agent, times), agent.dims, TRACK_TYPES[agent.category], agent.id, extra
        )
    own = scenario_to_dict(sc)
    own.pop("map")
    own.pop("agents")
    return {
        "id": sc.name,
        "version": SN_VERSION,
        "length": len(times),
        "metadata": {
            "ts": times,
            "coordinate": "right-handed",
            "sdc_id": "ego",
            "dataset": "cvd_sim",
            "scenario_id": sc.name,
            "id": sc.name,
            "metadrive_processed": False,
            "cvd_sim": own,
            "map_name": sc.map.name,
        },
        "tracks": tracks,
        "dynamic_map_states": {},
        "map_features": map_to_features(sc.map),
    }


# ---------------------------------------------------------------- import


def _neighbor_ids(value) -> list[str]:
    """Neighbour lists are ids (nuScenes, ours) or dicts with `feature_id` (Waymo)."""
    out = []
    for item in value if value is not None else []:
        out.append(str(item["feature_id"] if isinstance(item, dict) else item))
    return out


def map_from_features(features: dict[str, dict[str, Any]], name: str = "") -> tuple[MapSpec, list[str]]:
    """ScenarioNet `map_features` -> our map, plus the ids of features our format cannot hold."""
    lanes, lines, edges, walks, stops, skipped = [], [], [], [], [], []
    for fid, f in features.items():
        fid = str(fid)
        kind = str(f.get("type", ""))
        if kind.startswith("LANE_"):
            polyline = f.get("polyline")
            if polyline is None or len(polyline) < 2:
                skipped.append(fid)
                continue
            width = f.get("width")
            lane_type = kind[5:].lower()
            lane = {
                "id": fid,
                "centerline": _poly2(polyline),
                "width": float(np.median(width)) if width is not None and np.size(width) else 3.5,
                "successors": [str(x) for x in f.get("exit_lanes", [])],
                "predecessors": [str(x) for x in f.get("entry_lanes", [])],
                "left_neighbors": _neighbor_ids(f.get("left_neighbor")),
                "right_neighbors": _neighbor_ids(f.get("right_neighbor")),
                "type": lane_type if lane_type in ("surface_street", "freeway", "bike_lane") else "unknown",
            }
            if f.get("speed_limit_kmh") is not None and float(f["speed_limit_kmh"]) > 0:
                lane["speed_limit"] = round(float(f["speed_limit_kmh"]) / 3.6, 9)
            if f.get("left_boundary") is not None and f.get("right_boundary") is not None:
                lane["left_boundary"] = _poly2(f["left_boundary"])
                lane["right_boundary"] = _poly2(f["right_boundary"])
            lanes.append(lane)
        elif kind.startswith("ROAD_LINE_"):
            lines.append({"id": fid, "type": kind[10:].lower(), "polyline": _poly2(f["polyline"])})
        elif kind.startswith("ROAD_EDGE_"):
            edges.append({"id": fid, "type": kind[10:].lower(), "polyline": _poly2(f["polyline"])})
        elif kind == "CROSSWALK":
            walks.append({"id": fid, "polygon": _poly2(f["polygon"])})
        elif kind == "STOP_SIGN" and f.get("polyline") is not None:
            stops.append(
                {"id": fid, "polyline": _poly2(f["polyline"]), "lanes": [str(x) for x in f.get("lane", [])]}
            )
        else:
            skipped.append(fid)
    known = {lane["id"] for lane in lanes}
    for lane in lanes:  # drop references to lanes that were not imported
        for key in ("successors", "predecessors", "left_neighbors", "right_neighbors"):
            lane[key] = [r for r in lane[key] if r in known and r != lane["id"]]
    for stop in stops:
        stop["lanes"] = [r for r in stop["lanes"] if r in known]
    data = {
        "name": name,
        "lanes": lanes,
        "road_lines": lines,
        "road_edges": edges,
        "crosswalks": walks,
        "stop_lines": stops,
    }
    try:
        return MapSpec.model_validate(data), skipped
    except Exception as err:
        raise ScenarioError.single("map_features", f"cannot import the map: {err}") from None


def _category_of(track: dict) -> str | None:
    meta = track.get("metadata", {}) or {}
    if meta.get("cvd_sim_category") in CATEGORY_NAMES:
        return meta["cvd_sim_category"]
    kind = str(track.get("type", ""))
    state = track["state"]
    if kind == "VEHICLE":
        length = float(np.max(state["length"])) if "length" in state else 4.6
        return "bus" if length > 10.0 else "truck" if length > 6.5 else "car"
    return {
        "PEDESTRIAN": "pedestrian",
        "CYCLIST": "bicycle",
        "TRAFFIC_CONE": "traffic_cone",
        "TRAFFIC_BARRIER": "barrier",
    }.get(kind)


def _first(state: dict, key: str, k: int, default: float) -> float:
    value = state.get(key)
    if value is None:
        return default
    arr = np.asarray(value, dtype=np.float64).reshape(len(np.asarray(value)), -1)
    return float(arr[k, 0])


def from_scenarionet(sn: dict[str, Any], name: str | None = None) -> tuple[Scenario, list[str]]:
    """A ScenarioNet scenario dict -> (our scenario, ids of tracks and map features that were skipped)."""
    try:
        return _from_scenarionet(sn, name)
    except ScenarioError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ScenarioError.single("", f"not a ScenarioNet scenario: {type(err).__name__}: {err}") from None


def _from_scenarionet(sn: dict[str, Any], name: str | None) -> tuple[Scenario, list[str]]:
    meta = sn.get("metadata", {}) or {}
    own = meta.get("cvd_sim")
    ts = np.asarray(meta.get("ts", np.arange(int(sn["length"])) * 0.1), dtype=np.float64)
    dt = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.1
    name = name or str(sn.get("id") or meta.get("scenario_id") or "scenarionet")
    map_spec, skipped = map_from_features(
        sn["map_features"], name=str(meta.get("map_name", meta.get("dataset", "")))
    )
    sdc_id = str(meta.get("sdc_id", "ego"))
    tracks = {str(k): v for k, v in sn["tracks"].items()}
    agents = []
    for tid, track in tracks.items():
        if tid == sdc_id:
            continue
        category = _category_of(track)
        state = track["state"]
        valid = np.asarray(state["valid"], dtype=bool)
        if category is None or not valid[0]:
            skipped.append(tid)
            continue
        agent = _agent_from_track(tid, track, category, ts, valid)
        if own is None and not _on_map(map_spec, agent):
            skipped.append(tid)
            continue
        agents.append(agent)
    sdc = tracks[sdc_id]
    if own is not None:
        data = dict(own)
    else:
        data = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "duration": float(ts[-1] - ts[0]) or dt,
            "dt": dt,
            "scene": {"place": f"{meta.get('dataset', 'imported')} scene"},
            "ego": _ego_from_track(sdc, map_spec),
        }
    data["map"] = map_spec.model_dump(mode="json")
    data["agents"] = agents
    return scenario_from_dict(data, f"<scenarionet:{name}>"), skipped


def _on_map(map_spec: MapSpec, agent: dict) -> bool:
    """Whether an imported agent passes our on-map check (foreign data has cars in parking lots)."""
    is_vehicle = CATEGORIES[category_id(agent["category"])].is_vehicle
    tol = VEHICLE_ON_MAP_TOLERANCE if is_vehicle else OTHER_ON_MAP_TOLERANCE
    return road_map(map_spec).on_drivable_area(Point(agent["pose"]["x"], agent["pose"]["y"]), tol)


def _agent_from_track(tid: str, track: dict, category: str, ts: np.ndarray, valid: np.ndarray) -> dict:
    state, meta = track["state"], track.get("metadata", {}) or {}
    pos = np.asarray(state["position"], dtype=np.float64)[:, :2]
    heading = np.asarray(state["heading"], dtype=np.float64).reshape(-1)
    vel = np.asarray(state.get("velocity", np.zeros((len(pos), 2))), dtype=np.float64)[:, :2]
    size = [_first(state, "length", 0, 4.6), _first(state, "width", 0, 1.9), _first(state, "height", 0, 1.6)]
    agent = {
        "id": tid,
        "category": category,
        "size": size if meta.get("cvd_sim_size_given", True) else None,
        "pose": meta.get(
            "cvd_sim_pose", {"x": float(pos[0, 0]), "y": float(pos[0, 1]), "yaw": float(heading[0])}
        ),
        "speed": float(meta.get("cvd_sim_speed", np.hypot(*vel[0]))),
        "allow_overlap": bool(meta.get("cvd_sim_allow_overlap", True)),
    }
    if "cvd_sim_behavior" in meta:
        agent["behavior"] = meta["cvd_sim_behavior"]
        return agent
    last = int(np.nonzero(valid)[0][-1])
    run = valid[: last + 1].all()
    keep = np.nonzero(valid)[0] if run else np.arange(int(np.argmin(valid)))  # the first unbroken run
    if np.max(np.linalg.norm(pos[keep] - pos[0], axis=1)) <= STILL_THRESHOLD:
        agent["behavior"] = {"type": "static"}
    else:
        agent["behavior"] = {
            "type": "waypoints",
            "points": [
                {
                    "t": float(ts[k] - ts[0]),
                    "x": float(pos[k, 0]),
                    "y": float(pos[k, 1]),
                    "yaw": float(heading[k]),
                }
                for k in keep
            ],
        }
    return agent


def _ego_from_track(track: dict, map_spec: MapSpec) -> dict:
    """The SDC track -> our ego (rear axle pose, speed, lane route along its path, goal at its last position)."""
    state = track["state"]
    valid = np.asarray(state["valid"], dtype=bool)
    pos = np.asarray(state["position"], dtype=np.float64)[:, :2][valid]
    heading = np.asarray(state["heading"], dtype=np.float64).reshape(-1)[valid]
    vel = np.asarray(state["velocity"], dtype=np.float64)[:, :2][valid]
    length, width, height = (
        _first(state, k, int(np.argmax(valid)), d)
        for k, d in (("length", 4.6), ("width", 1.9), ("height", 1.6))
    )
    wheelbase = min(2.8, 0.6 * length)
    overhang = min(0.9, (length - wheelbase) / 2)
    vehicle = {
        "length": length,
        "width": width,
        "height": max(height, 0.1),
        "wheelbase": wheelbase,
        "rear_overhang": overhang,
    }
    off = length / 2 - overhang
    x, y, yaw = pos[0, 0] - off * math.cos(heading[0]), pos[0, 1] - off * math.sin(heading[0]), heading[0]
    rmap = road_map(map_spec)
    route: list[str] = []
    for k in range(0, len(pos), 5):
        match = rmap.nearest_lane(float(pos[k, 0]), float(pos[k, 1]), float(heading[k]))
        if not route or match.lane_id != route[-1]:
            if route and rmap.link_kind(route[-1], match.lane_id) is None:
                try:
                    route += rmap.shortest_route(route[-1], match.lane_id)[1:]
                except ValueError:
                    break
            else:
                route.append(match.lane_id)
    return {
        "pose": {"x": float(x), "y": float(y), "yaw": float(yaw)},
        "speed": float(np.hypot(*vel[0])),
        "route": route,
        "goal": [float(pos[-1, 0]), float(pos[-1, 1])],
        "vehicle": vehicle,
    }


# ---------------------------------------------------------------- files


class _DictUnpickler(pickle.Unpickler):
    """Loads ScenarioNet pickles without metadrive: its ScenarioDescription (a dict subclass) becomes dict."""

    def find_class(self, module: str, name: str):
        if module.startswith("metadrive") or module.startswith("scenarionet"):
            return dict
        if (
            module == "numpy"
            or module.startswith("numpy.")
            or module in ("builtins", "collections", "copyreg", "_codecs")
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_scenarionet_pickle(path: str | Path) -> dict[str, Any]:
    """A ScenarioNet scenario pickle (`sd_*.pkl`) -> its dict (only numpy and builtins are unpickled)."""
    try:
        with open(path, "rb") as fh:
            data = _DictUnpickler(fh).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as err:
        raise ScenarioError.single("", f"cannot read ScenarioNet pickle: {err}", str(path)) from None
    if not isinstance(data, dict) or "tracks" not in data or "map_features" not in data:
        raise ScenarioError.single("", "not a ScenarioNet scenario (no tracks / map_features)", str(path))
    return data


def write_scenarionet_pickle(sn: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(sn, fh, protocol=4)
    return path
