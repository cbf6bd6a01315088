"""The World: ego dynamics + reactive traffic + per-step metrics, built from a scenario.

    world = World.from_scenario(scenario, seed=0)
    while not world.done:
        snap = world.step((accel, steering))           # or AccelSteer / WaypointTrajectory (ego frame)
    scores = world.scores()                             # EpisodeScores (nuPlan, PDMS, RC, arena)

`Autopilot` (lane-following IDM) gives a control for the ego: `world.step(Autopilot(world)(world))`.
The reference ("expert") progress that the progress metrics compare with is the autopilot's own rollout
of the same scenario and seed, computed once per (scenario, seed) and cached.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from cvd_sim.geometry.transforms import apply_transform, invert_pose, pose_from_xyz_yaw, wrap_angle
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import Scenario
from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.checks import MapChecks
from cvd_sim.world.collisions import Collision, classify_collision, colliding_agents
from cvd_sim.world.control import AccelSteer, WaypointTrajectory, as_control
from cvd_sim.world.controller import TrajectoryTracker
from cvd_sim.world.dynamics import EgoState, bicycle_step
from cvd_sim.world.route import EgoRoute
from cvd_sim.world.scores import EpisodeScores, StepRecord, episode_scores
from cvd_sim.world.traffic import Traffic
from cvd_sim.world.ttc import time_to_collision


@dataclass(frozen=True)
class WorldSnapshot:
    """Frozen state of the world at one instant (world frame unless said otherwise).

    ego: rear-axle state; ego_box [7]; ego_to_world [4, 4] (rear axle on the ground);
    boxes [N, 7] (x, y, z centre, l, w, h, yaw); categories [N] int64; instance_ids [N] int64 (agent index + 1,
    0 is the ego); names: agent ids; velocities [N, 2] m/s; speeds [N].
    """

    time: float
    step: int
    ego: EgoState
    ego_box: np.ndarray
    ego_to_world: np.ndarray
    boxes: np.ndarray
    categories: np.ndarray
    instance_ids: np.ndarray
    names: tuple[str, ...]
    velocities: np.ndarray

    def boxes_in_ego(self) -> np.ndarray:
        """[N, 7] boxes in the ego frame."""
        world_to_ego = invert_pose(self.ego_to_world)
        out = self.boxes.copy()
        out[:, :3] = apply_transform(world_to_ego, self.boxes[:, :3])
        out[:, 6] = wrap_angle(self.boxes[:, 6] - self.ego.yaw)
        return out


_EXPERT_CACHE: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
_EXPERT_CACHE_SIZE = 16


class World:
    """A running scenario. Time advances by `scenario.dt` per `step`; `done` after `scenario.num_steps` steps."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        expert_progress: np.ndarray | None = None,
        metrics: bool = True,
    ):
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else int(seed)
        self.dt = scenario.dt
        self.num_steps = scenario.num_steps
        self.road_map = road_map(scenario.map)
        self.vehicle = scenario.ego.vehicle
        pose = scenario.ego.pose
        self.ego = EgoState(pose.x, pose.y, pose.yaw, speed=scenario.ego.speed)
        self.route = EgoRoute(scenario.ego, self.road_map)
        self.traffic = Traffic(scenario.agents, self.road_map, np.random.default_rng(self.seed))
        self.tracker = TrajectoryTracker(self.vehicle.wheelbase)
        self.checks = MapChecks(self.road_map)
        self._expert = expert_progress  # [num_steps + 1] cumulative; None = this run is its own reference
        self.metrics = metrics  # False: no per-step records (reference rollouts only need the route progress)
        self.step_index = 0
        self.records: list[StepRecord] = []
        self._collided: set[int] = set()

    @classmethod
    def from_scenario(cls, scenario: Scenario, seed: int | None = None, with_expert: bool = True) -> World:
        """A world at t = 0. with_expert=False skips the reference rollout (progress ratios then compare the
        run with itself, i.e. are 1)."""
        seed = scenario.seed if seed is None else int(seed)
        expert = expert_progress(scenario, seed) if with_expert else None
        return cls(scenario, seed, expert)

    # ------------------------------------------------------------ state

    @property
    def time(self) -> float:
        return self.step_index * self.dt

    @property
    def done(self) -> bool:
        return self.step_index >= self.num_steps

    def ego_box(self) -> np.ndarray:
        return self.ego.box(self.vehicle)

    def snapshot(self) -> WorldSnapshot:
        n = len(self.traffic)
        return WorldSnapshot(
            time=self.time,
            step=self.step_index,
            ego=self.ego,
            ego_box=self.ego_box(),
            ego_to_world=pose_from_xyz_yaw(self.ego.x, self.ego.y, 0.0, self.ego.yaw),
            boxes=self.traffic.boxes(),
            categories=self.traffic.category.copy(),
            instance_ids=np.arange(1, n + 1, dtype=np.int64),
            names=tuple(self.traffic.names),
            velocities=self.traffic.velocities(),
        )

    # ------------------------------------------------------------ stepping

    def step(self, control) -> WorldSnapshot:
        """Advance by dt under `control` (AccelSteer, (accel, steering) or WaypointTrajectory); returns the new
        snapshot and appends this step's `StepRecord` to `records` (unless built with metrics=False)."""
        if self.done:
            raise RuntimeError(f"the episode is over ({self.num_steps} steps); build a new World")
        control = as_control(control)
        if isinstance(control, WaypointTrajectory):
            accel, steer = self.tracker.command(control.points, control.times, self.ego.speed, self.dt)
            control = AccelSteer(accel, steer)
        before = self.ego
        before_box = self.ego_box()
        self.ego = bicycle_step(before, control.accel, control.steering, self.dt, self.vehicle)
        # traffic reacts to where the ego was at the start of the step (everyone moves simultaneously)
        self.traffic.step(self.time, self.dt, before_box, before.speed)
        self.step_index += 1
        if self.metrics:
            self.records.append(self._record(before))
        return self.snapshot()

    def _record(self, before: EgoState) -> StepRecord:
        ego, box = self.ego, self.ego_box()
        agent_boxes = self.traffic.boxes()
        speeds = self.traffic.speeds()
        multiple_or_offroad = None
        offroad = self.checks.offroad_distance(box)
        collisions = []
        for i in colliding_agents(box, agent_boxes):
            if int(i) in self._collided:
                continue
            self._collided.add(int(i))
            if multiple_or_offroad is None:
                multiple_or_offroad = offroad > 0.0 or self.checks.in_multiple_lanes(box)
            kind, at_fault = classify_collision(
                box,
                np.array([ego.x, ego.y, ego.yaw]),
                ego.speed,
                agent_boxes[i],
                float(speeds[i]),
                multiple_or_offroad,
            )
            collisions.append(Collision(self.time, int(i), int(self.traffic.category[i]), kind, at_fault))
        c0 = before.box(self.vehicle)
        lane_progress, limit = self.checks.lane_progress(c0[0], c0[1], box[0], box[1])
        s_rear = self.route.s(ego.x, ego.y)
        if limit is None:
            limit = self.route.speed_limit(s_rear)
        progress = s_rear - self.route.s_start
        expert = (
            progress
            if self._expert is None
            else float(self._expert[min(self.step_index, len(self._expert) - 1)])
        )
        return StepRecord(
            time=self.time,
            speed=ego.speed,
            accel=ego.accel,
            yaw_rate=ego.yaw_rate,
            offroad_distance=offroad,
            lane_progress=lane_progress,
            route_progress=progress,
            expert_progress=expert,
            ttc=time_to_collision(box, ego.velocity(), agent_boxes, self.traffic.velocities()),
            speed_limit=limit,
            collisions=collisions,
        )

    def scores(self) -> EpisodeScores:
        """Aggregate scores of the steps so far."""
        return episode_scores(self.records, self.route.length)


def expert_progress(scenario: Scenario, seed: int) -> np.ndarray:
    """Cumulative route progress [num_steps + 1] of the autopilot driving the scenario (cached)."""
    key = (scenario.model_dump_json(), seed)
    hit = _EXPERT_CACHE.get(key)
    if hit is not None:
        _EXPERT_CACHE.move_to_end(key)
        return hit
    world = World(scenario, seed, None, metrics=False)
    pilot = Autopilot(world)
    progress = [0.0]
    while not world.done:
        world.step(pilot(world))
        progress.append(world.route.progress(world.ego.x, world.ego.y))
    out = np.array(progress)
    _EXPERT_CACHE[key] = out
    if len(_EXPERT_CACHE) > _EXPERT_CACHE_SIZE:
        _EXPERT_CACHE.popitem(last=False)
    return out
