"""Open-loop trajectories of a scenario: what each behaviour does when nobody reacts to anybody.

Used to export scripted tracks (ScenarioNet), to check builders and to draw paths. Semantics:
- the ego follows its route path (or the straight line to its goal) at its initial speed;
- `idm` runs the Intelligent Driver Model on a free road along its route (straight on past its end);
- `waypoints` interpolates (linear or cubic) and holds the last point; before the first time it holds the first;
- `trigger` runs `before`, then `after` from the firing time; an `ego_distance` trigger fires at the first
  sample where the ego's open-loop box centre is within the distance of the agent.
The closed-loop simulator (cvd_sim.world) applies the same semantics with interactions.
"""

from __future__ import annotations

import math

import numpy as np
from cvd_sim.scenarios.map_queries import Polyline2D, RoadMap, road_map
from cvd_sim.scenarios.schema import (
    AgentSpec,
    ConstantVelocityBehavior,
    IdmBehavior,
    Scenario,
    StaticBehavior,
    TriggerBehavior,
    WaypointsBehavior,
)
from scipy.interpolate import CubicSpline

# A trajectory is an array [T, 4] of (x, y, yaw, speed) at the requested times.


def scenario_times(sc: Scenario) -> np.ndarray:
    """Sample times [T] = 0, dt, ..., duration."""
    return np.arange(sc.num_steps + 1) * sc.dt


def _path_states(path: Polyline2D, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, path.length)
    xy = path.xy(s)
    return np.column_stack([xy, path.heading(s), v])


def idm_free_road(
    v0: float, beh: IdmBehavior, v_des: float, t: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and speed [T] under IDM with no leader: integrated with step dt, interpolated at times t."""
    n = math.ceil(max(float(np.max(t)), 0.0) / dt) + 1
    grid_s, grid_v = np.zeros(n + 1), np.zeros(n + 1)
    grid_v[0] = v0
    for k in range(n):
        v = grid_v[k]
        v_new = max(0.0, v + beh.max_accel * (1 - (v / v_des) ** beh.delta) * dt)
        grid_v[k + 1] = v_new
        grid_s[k + 1] = grid_s[k] + (v + v_new) / 2 * dt
    grid_t = np.arange(n + 1) * dt
    return np.interp(t, grid_t, grid_s), np.interp(t, grid_t, grid_v)


def behavior_states(
    beh, start: tuple[float, float, float], speed: float, t: np.ndarray, rmap: RoadMap, dt: float
) -> np.ndarray:
    """States [T, 4] of a plain behaviour started at pose `start` (x, y, yaw) with `speed`, at times t
    (seconds since the behaviour started)."""
    x0, y0, yaw0 = start
    n = len(t)
    if isinstance(beh, StaticBehavior):
        return np.tile([x0, y0, yaw0, 0.0], (n, 1))
    if isinstance(beh, ConstantVelocityBehavior):
        v = speed if beh.speed is None else beh.speed
        w = beh.yaw_rate
        yaw = yaw0 + w * t
        if abs(w) < 1e-9:
            x, y = x0 + v * t * math.cos(yaw0), y0 + v * t * math.sin(yaw0)
        else:
            x = x0 + v / w * (np.sin(yaw) - math.sin(yaw0))
            y = y0 - v / w * (np.cos(yaw) - math.cos(yaw0))
        return np.column_stack([x, y, yaw, np.full(n, v)])
    if isinstance(beh, IdmBehavior):
        path = Polyline2D(rmap.route_path(beh.route))
        s_start = float(path.frenet([x0, y0])[0])
        v_des = beh.desired_speed or rmap.lane(beh.route[0]).spec.speed_limit
        s, v = idm_free_road(speed, beh, v_des, t, dt)
        xy = path.xy(s_start + s)  # past the route's end the path extends straight on
        return np.column_stack([xy, path.heading(s_start + s), v])
    if isinstance(beh, WaypointsBehavior):
        return waypoint_states(beh, t)
    raise TypeError(f"not a plain behaviour: {type(beh).__name__}")


def waypoint_states(beh: WaypointsBehavior, t: np.ndarray) -> np.ndarray:
    """States [T, 4] along timed waypoints; yaw from the waypoints where all give one, else along the motion."""
    tw = np.array([p.t for p in beh.points])
    xy = np.array([[p.x, p.y] for p in beh.points])
    tc = np.clip(t, tw[0], tw[-1])
    moving = (t >= tw[0]) & (t < tw[-1])
    if beh.interpolation == "cubic" and len(tw) >= 3:
        spline = CubicSpline(tw, xy, axis=0)
        pos, vel = spline(tc), spline(tc, 1)
    else:
        pos = np.column_stack([np.interp(tc, tw, xy[:, 0]), np.interp(tc, tw, xy[:, 1])])
        seg = np.clip(np.searchsorted(tw, tc, side="right") - 1, 0, len(tw) - 2)
        vel = (xy[seg + 1] - xy[seg]) / (tw[seg + 1] - tw[seg])[:, None]
    speed = np.where(moving, np.linalg.norm(vel, axis=1), 0.0)
    if all(p.yaw is not None for p in beh.points):
        yaw = np.interp(tc, tw, np.unwrap([p.yaw for p in beh.points]))
    else:
        yaw = _heading_along(xy, tw, tc)
    return np.column_stack([pos, yaw, speed])


def _heading_along(xy: np.ndarray, tw: np.ndarray, tc: np.ndarray) -> np.ndarray:
    """Direction of travel of the segment active at each time (held across stops)."""
    d = np.diff(xy, axis=0)
    seg_yaw = np.arctan2(d[:, 1], d[:, 0])
    moving = np.linalg.norm(d, axis=1) > 1e-9
    last = seg_yaw[moving][0] if moving.any() else 0.0
    for i in range(len(seg_yaw)):
        last = seg_yaw[i] if moving[i] else last
        seg_yaw[i] = last
    seg = np.clip(np.searchsorted(tw, tc, side="right") - 1, 0, len(tw) - 2)
    return seg_yaw[seg]


def ego_states(sc: Scenario, t: np.ndarray | None = None) -> np.ndarray:
    """Open-loop ego reference [T, 4] (rear axle x, y, yaw, speed): its route path (or the line to its goal)
    at its initial speed."""
    t = scenario_times(sc) if t is None else t
    ego = sc.ego
    if ego.route:
        path = Polyline2D(road_map(sc.map).route_path(ego.route))
    else:
        path = Polyline2D([(ego.pose.x, ego.pose.y), ego.goal])
    s0 = float(path.frenet([ego.pose.x, ego.pose.y])[0])
    s = s0 + ego.speed * t
    states = _path_states(path, s, np.where(s < path.length, ego.speed, 0.0))
    return states


def agent_states(sc: Scenario, agent: AgentSpec, t: np.ndarray | None = None) -> np.ndarray:
    """Open-loop states [T, 4] (box centre x, y, yaw, speed) of one agent at times t (default: every dt)."""
    t = scenario_times(sc) if t is None else np.asarray(t, dtype=np.float64)
    rmap = road_map(sc.map)
    start = (agent.pose.x, agent.pose.y, agent.pose.yaw)
    beh = agent.behavior
    if not isinstance(beh, TriggerBehavior):
        return behavior_states(beh, start, agent.speed, t, rmap, sc.dt)
    fire = trigger_time(sc, agent, t)
    before = behavior_states(beh.before, start, agent.speed, t, rmap, sc.dt)
    if fire is None:
        return before
    k = int(np.searchsorted(t, fire))
    at_fire = behavior_states(beh.before, start, agent.speed, np.array([fire]), rmap, sc.dt)[0]
    after = behavior_states(beh.after, tuple(at_fire[:3]), float(at_fire[3]), t[k:] - fire, rmap, sc.dt)
    return np.concatenate([before[:k], after], axis=0)


def trigger_time(sc: Scenario, agent: AgentSpec, t: np.ndarray | None = None) -> float | None:
    """When an agent's trigger fires in the open-loop rollout (None if never within the times t)."""
    beh = agent.behavior
    if not isinstance(beh, TriggerBehavior):
        return None
    t = scenario_times(sc) if t is None else t
    if beh.condition.time is not None:
        return beh.condition.time if beh.condition.time <= t[-1] + 1e-9 else None
    before = behavior_states(
        beh.before, (agent.pose.x, agent.pose.y, agent.pose.yaw), agent.speed, t, road_map(sc.map), sc.dt
    )
    ego = ego_states(sc, t)
    off = sc.ego.vehicle.center_offset
    centre = ego[:, :2] + off * np.column_stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])])
    hit = np.nonzero(np.linalg.norm(centre - before[:, :2], axis=1) <= beh.condition.ego_distance)[0]
    return float(t[hit[0]]) if len(hit) else None


def ego_center_states(sc: Scenario, t: np.ndarray | None = None) -> np.ndarray:
    """Open-loop ego box-centre states [T, 4]."""
    states = ego_states(sc, t).copy()
    off = sc.ego.vehicle.center_offset
    states[:, 0] += off * np.cos(states[:, 2])
    states[:, 1] += off * np.sin(states[:, 2])
    return states
