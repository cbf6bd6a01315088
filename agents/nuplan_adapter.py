"""nuPlan-style planner adapter: run a planner written against nuPlan's `AbstractPlanner` API in cvd-sim.

nuplan-devkit is not on PyPI (install it from github.com/motional/nuplan-devkit), so this module mirrors
the parts of its interface a planner touches, with the same names and meanings:

    nuPlan                                          here
    AbstractPlanner.initialize(PlannerInitialization) NuPlanStylePlanner.initialize(PlannerInitialization)
      .route_roadblock_ids, .mission_goal, .map_api      .route_roadblock_ids (lane ids), .mission_goal
                                                         (StateSE2), .map_api (cvd_sim RoadMap)
    AbstractPlanner.compute_planner_trajectory(        NuPlanStylePlanner.compute_planner_trajectory(
      PlannerInput)                                      PlannerInput)
      .iteration.time_s, .history.ego_states,            same names; ego_states: EgoState list, oldest
      .history.observations (DetectionsTracks)           first; observations: TrackedObjects lists
    returns InterpolatedTrajectory of EgoStates        returns a list of TrajectoryState (time_s, x, y,
                                                         heading) in the world frame, the first at now

To port a nuPlan planner: subclass `NuPlanStylePlanner`, keep `initialize`/`compute_planner_trajectory`,
read `map_api` through RoadMap (lanes, routing, Frenet) instead of nuPlan's map API, and return world-frame
states. `NuPlanAdapter(planner)` then satisfies cvd-sim's `Planner` protocol in waypoint control: it keeps the
ego history buffer (`history_seconds`), turns the env info into tracked objects, and resamples the returned
trajectory at the env's waypoint times, in the ego frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cvd_sim.agents.perception import road_users
from cvd_sim.envs.scenario_info import ScenarioInfo
from cvd_sim.scenarios.categories import CATEGORY_NAMES
from cvd_sim.scenarios.map_queries import RoadMap


@dataclass(frozen=True)
class StateSE2:
    x: float
    y: float
    heading: float


@dataclass(frozen=True)
class EgoState:
    """Rear-axle state, world frame (nuPlan's EgoState.rear_axle + dynamic state), at time_s."""

    time_s: float
    rear_axle: StateSE2
    speed: float
    acceleration: float
    steering_angle: float
    yaw_rate: float


@dataclass(frozen=True)
class TrackedObject:
    """A tracked agent or static object: box centre pose, size (length, width, height), velocity (world)."""

    track_token: str
    category: str
    center: StateSE2
    box_size: tuple[float, float, float]
    velocity: tuple[float, float]


@dataclass
class SimulationHistoryBuffer:
    ego_states: deque
    observations: deque  # each: list[TrackedObject]

    @property
    def current_state(self) -> tuple[EgoState, list[TrackedObject]]:
        return self.ego_states[-1], self.observations[-1]


@dataclass(frozen=True)
class SimulationIteration:
    index: int
    time_s: float


@dataclass(frozen=True)
class PlannerInput:
    iteration: SimulationIteration
    history: SimulationHistoryBuffer
    traffic_light_data: list = field(default_factory=list)


@dataclass(frozen=True)
class PlannerInitialization:
    route_roadblock_ids: list[str]
    mission_goal: StateSE2
    map_api: RoadMap


@dataclass(frozen=True)
class TrajectoryState:
    time_s: float
    x: float
    y: float
    heading: float


class NuPlanStylePlanner:
    """Base class with nuPlan's planner interface (see module docstring)."""

    requires_scenario: bool = False

    def name(self) -> str:
        return type(self).__name__

    def initialize(self, initialization: PlannerInitialization) -> None:
        raise NotImplementedError

    def compute_planner_trajectory(self, current_input: PlannerInput) -> list[TrajectoryState]:
        raise NotImplementedError


class SimplePlanner(NuPlanStylePlanner):
    """Port of nuPlan's `SimplePlanner`: drives straight along its current heading, accelerating to
    `max_velocity` (nuPlan defaults: horizon 8 s, sampling 0.25 s, acceleration 1 m/s^2, max velocity 5 m/s)."""

    def __init__(
        self,
        horizon_seconds: float = 8.0,
        sampling_time: float = 0.25,
        acceleration: float = 1.0,
        max_velocity: float = 5.0,
    ):
        self.horizon_seconds, self.sampling_time = horizon_seconds, sampling_time
        self.acceleration, self.max_velocity = acceleration, max_velocity

    def initialize(self, initialization: PlannerInitialization) -> None:
        self.goal = initialization.mission_goal

    def compute_planner_trajectory(self, current_input: PlannerInput) -> list[TrajectoryState]:
        ego, _ = current_input.history.current_state
        x, y, heading, v = ego.rear_axle.x, ego.rear_axle.y, ego.rear_axle.heading, ego.speed
        states = [TrajectoryState(ego.time_s, x, y, heading)]
        for k in range(1, int(self.horizon_seconds / self.sampling_time) + 1):
            accel = self.acceleration if v < self.max_velocity else -self.acceleration
            v_next = float(np.clip(v + accel * self.sampling_time, 0.0, self.max_velocity))
            step = 0.5 * (v + v_next) * self.sampling_time
            x, y, v = x + step * np.cos(heading), y + step * np.sin(heading), v_next
            states.append(TrajectoryState(ego.time_s + k * self.sampling_time, x, y, heading))
        return states


class NuPlanAdapter:
    """cvd-sim `Planner` (waypoint control) around a `NuPlanStylePlanner`."""

    control = "waypoints"

    def __init__(self, planner: NuPlanStylePlanner, history_seconds: float = 2.0):
        self.planner = planner
        self.history_seconds = history_seconds

    def reset(self, scenario_info: ScenarioInfo) -> None:
        self.info = scenario_info
        size = round(self.history_seconds / scenario_info.dt) + 1
        self.history = SimulationHistoryBuffer(deque(maxlen=size), deque(maxlen=size))
        goal = scenario_info.goal
        heading = float(scenario_info.route.path.heading(scenario_info.route.s_end))
        self.planner.initialize(
            PlannerInitialization(
                list(scenario_info.route.lanes),
                StateSE2(float(goal[0]), float(goal[1]), heading),
                scenario_info.road_map,
            )
        )

    def _observe(self, info: dict[str, Any]) -> None:
        x, y, yaw, speed, accel, steering, yaw_rate = (float(v) for v in info["ego_state"])
        t = float(info["time"])
        self.history.ego_states.append(EgoState(t, StateSE2(x, y, yaw), speed, accel, steering, yaw_rate))
        users = road_users(info)
        vel = np.asarray(info["box_velocities"])[: len(users.xy)]
        self.history.observations.append(
            [
                TrackedObject(
                    f"agent_{i}",
                    CATEGORY_NAMES[int(users.category[i])],
                    StateSE2(float(users.xy[i, 0]), float(users.xy[i, 1]), float(users.yaw[i])),
                    tuple(float(v) for v in users.lwh[i]),
                    (float(vel[i, 0]), float(vel[i, 1])),
                )
                for i in range(len(users.xy))
            ]
        )

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        self._observe(info)
        ego = self.history.ego_states[-1]
        iteration = SimulationIteration(int(info["step"]), ego.time_s)
        states = self.planner.compute_planner_trajectory(PlannerInput(iteration, self.history))
        t = np.array([s.time_s for s in states]) - ego.time_s
        xy = np.array([[s.x, s.y] for s in states])
        query = self.info.waypoint_times
        world = np.column_stack([np.interp(query, t, xy[:, 0]), np.interp(query, t, xy[:, 1])])
        c, s = np.cos(ego.rear_axle.heading), np.sin(ego.rear_axle.heading)
        rel = world - [ego.rear_axle.x, ego.rear_axle.y]
        return np.column_stack([rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c]).astype(
            np.float32
        )


def simple_nuplan_planner() -> NuPlanAdapter:
    """nuPlan's SimplePlanner behind the adapter (the `nuplan_simple` name of `cvd-sim evaluate`)."""
    return NuPlanAdapter(SimplePlanner())
