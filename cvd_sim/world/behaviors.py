"""Agent behaviours: one runner per agent advances its state by dt.

static: stays; constant_velocity: moves along its heading (exact arcs when turning); waypoints: timed
positions, linear or cubic (scipy) interpolation, holds the last; idm: Intelligent Driver Model along a lane
route, reacting to the nearest road user ahead (the ego included) and stopping for pedestrians on
crosswalks; trigger: `before` until a time or an ego distance, then `after` with its clock restarted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from cvd_sim.scenarios.map_queries import Polyline2D, RoadMap
from cvd_sim.scenarios.schema import (
    ConstantVelocityBehavior,
    IdmBehavior,
    StaticBehavior,
    TriggerBehavior,
    WaypointsBehavior,
)
from cvd_sim.world.dynamics import arc_advance
from cvd_sim.world.following import RoadUsers, crosswalk_spans, crosswalk_stop_gap, find_leader
from cvd_sim.world.idm import IDMParams, idm_acceleration

LATERAL_SETTLE_TIME = 2.0  # s, time constant with which an IDM agent's start offset decays to its lane centre


@dataclass
class AgentState:
    """Mutable kinematic state of one agent (box centre, world frame)."""

    x: float
    y: float
    yaw: float
    speed: float
    accel: float = 0.0


@dataclass(frozen=True)
class StepContext:
    """What a runner may look at during one step: time, everyone's state before the step, the map."""

    time: float
    users: RoadUsers
    ego_xy: np.ndarray  # [2] ego box centre
    road_map: RoadMap
    pedestrian_ids: tuple[int, ...]


class StaticRunner:
    def step(self, state: AgentState, ctx: StepContext, index: int, dt: float) -> None:
        state.speed, state.accel = 0.0, 0.0


class ConstantVelocityRunner:
    def __init__(self, behavior: ConstantVelocityBehavior, state: AgentState):
        self.speed = state.speed if behavior.speed is None else behavior.speed
        self.yaw_rate = behavior.yaw_rate

    def step(self, state: AgentState, ctx: StepContext, index: int, dt: float) -> None:
        distance = self.speed * dt
        curvature = self.yaw_rate / self.speed if self.speed > 0 else 0.0
        if self.speed > 0:
            state.x, state.y, state.yaw = (
                float(v) for v in arc_advance(state.x, state.y, state.yaw, distance, curvature)
            )
        else:
            state.yaw += self.yaw_rate * dt
        state.accel = (self.speed - state.speed) / dt
        state.speed = self.speed


class WaypointsRunner:
    """Timed waypoints; the clock starts when the runner is made (t_start)."""

    def __init__(self, behavior: WaypointsBehavior, t_start: float):
        pts = behavior.points
        self.t_start = t_start
        self.t = np.array([p.t for p in pts])
        xy = np.array([[p.x, p.y] for p in pts])
        self.t_end = float(self.t[-1])
        if behavior.interpolation == "cubic" and len(pts) >= 3:
            spline = CubicSpline(self.t, xy, bc_type="natural")
            self._pos, self._vel = spline, spline.derivative()
        else:
            self._pos = lambda t: np.array([np.interp(t, self.t, xy[:, 0]), np.interp(t, self.t, xy[:, 1])])
            seg_vel = np.diff(xy, axis=0) / np.diff(self.t)[:, None]
            self._vel = lambda t: seg_vel[
                int(np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(seg_vel) - 1))
            ]
        yaws = [p.yaw for p in pts]
        self._yaw_given = None
        if all(y is not None for y in yaws):
            self._yaw_given = np.unwrap(np.array(yaws, dtype=np.float64))

    def step(self, state: AgentState, ctx: StepContext, index: int, dt: float) -> None:
        t = min(ctx.time + dt - self.t_start, self.t_end)
        x, y = (float(v) for v in self._pos(t))
        vel = np.asarray(self._vel(t), dtype=np.float64) if t < self.t_end else np.zeros(2)
        speed = float(np.hypot(*vel))
        if self._yaw_given is not None:
            yaw = float(np.interp(t, self.t, self._yaw_given))
        elif speed > 1e-3:
            yaw = float(np.arctan2(vel[1], vel[0]))
        else:
            yaw = state.yaw
        state.accel = (speed - state.speed) / dt
        state.x, state.y, state.yaw, state.speed = x, y, yaw, speed


def route_speed_limits(road_map: RoadMap, route: list[str], xy: np.ndarray) -> np.ndarray:
    """Speed limit [P] at points xy [P, 2] along a route: that of the route lane closest to each point."""
    costs = []
    for lane_id in route:
        lane = road_map.lane(lane_id)
        s, d = lane.frenet(xy)
        costs.append(np.abs(d) + np.maximum(0.0, -s) + np.maximum(0.0, s - lane.length))
    best = np.argmin(np.stack(costs), axis=0)
    return np.array([road_map.lane(route[i]).spec.speed_limit for i in best])


class IdmRunner:
    """IDM along the centreline of a lane route; lateral start offset decays to the centre."""

    def __init__(
        self,
        behavior: IdmBehavior,
        state: AgentState,
        lwh: tuple[float, float, float],
        road_map: RoadMap,
        speed_factor: float,
    ):
        self.path = Polyline2D(road_map.route_path(behavior.route))
        self.params = IDMParams.from_behavior(behavior)
        s, d = self.path.frenet([state.x, state.y])
        self.s, self.d = float(s), float(d)
        self.half_length, self.half_width = lwh[0] / 2, lwh[1] / 2
        # desired speed along the path: the behaviour's, else the speed limit of the route lane there
        samples = np.linspace(0.0, self.path.length, max(2, int(self.path.length / 5.0) + 1))
        if behavior.desired_speed is not None:
            limits = np.full(len(samples), behavior.desired_speed)
        else:
            limits = route_speed_limits(road_map, behavior.route, self.path.xy(samples)) * speed_factor
        self._speed_s, self._speed_v = samples, limits
        self.spans = crosswalk_spans(self.path, list(road_map.crosswalks.values()))

    def desired_speed(self) -> float:
        return float(np.interp(self.s, self._speed_s, self._speed_v))

    def step(self, state: AgentState, ctx: StepContext, index: int, dt: float) -> None:
        gap, lead_v = find_leader(self.path, self.s, self.half_length, self.half_width, ctx.users, index)
        stop_gap = crosswalk_stop_gap(self.spans, self.s, self.half_length, ctx.users, ctx.pedestrian_ids)
        if stop_gap < gap:
            gap, lead_v = stop_gap, 0.0
        acc = float(
            idm_acceleration(
                np.array([state.speed]),
                np.array([self.desired_speed()]),
                np.array([gap]),
                np.array([lead_v]),
                self.params,
            )[0]
        )
        new_speed = max(0.0, state.speed + acc * dt)
        self.s += 0.5 * (state.speed + new_speed) * dt
        self.d *= float(np.exp(-dt / LATERAL_SETTLE_TIME))
        x, y = self.path.xy(self.s, self.d)
        state.x, state.y, state.yaw = float(x), float(y), float(self.path.heading(self.s))
        state.accel, state.speed = (new_speed - state.speed) / dt, new_speed


class TriggerRunner:
    def __init__(self, behavior: TriggerBehavior, state: AgentState, factory):
        self.behavior = behavior
        self.factory = factory  # (plain behaviour, state, t_start) -> runner
        self.fired = False
        self.current = factory(behavior.before, state, 0.0)

    def step(self, state: AgentState, ctx: StepContext, index: int, dt: float) -> None:
        if not self.fired and self._condition(state, ctx):
            self.fired = True
            self.current = self.factory(self.behavior.after, state, ctx.time)
        self.current.step(state, ctx, index, dt)

    def _condition(self, state: AgentState, ctx: StepContext) -> bool:
        cond = self.behavior.condition
        if cond.time is not None:
            return ctx.time >= cond.time - 1e-9
        return float(np.hypot(state.x - ctx.ego_xy[0], state.y - ctx.ego_xy[1])) <= cond.ego_distance


def make_runner(behavior, state: AgentState, lwh, road_map: RoadMap, t_start: float, speed_factor: float):
    """The runner of a (possibly trigger) behaviour for an agent in `state` starting at time t_start."""

    def factory(plain, st, t0):
        return make_runner(plain, st, lwh, road_map, t0, speed_factor)

    if isinstance(behavior, StaticBehavior):
        return StaticRunner()
    if isinstance(behavior, ConstantVelocityBehavior):
        return ConstantVelocityRunner(behavior, state)
    if isinstance(behavior, WaypointsBehavior):
        return WaypointsRunner(behavior, t_start)
    if isinstance(behavior, IdmBehavior):
        return IdmRunner(behavior, state, lwh, road_map, speed_factor)
    if isinstance(behavior, TriggerBehavior):
        return TriggerRunner(behavior, state, factory)
    raise TypeError(f"unknown behaviour {type(behavior).__name__}")
