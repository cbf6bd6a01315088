"""Traffic: the scenario's agents, their behaviours, and their boxes.

Each step every runner sees the same pre-step picture of all road users (agents and the ego), so the update
order never matters and a rollout depends only on the scenario, the seed and the ego's motion.
The seed draws each IDM agent's factor on the lane speed limit (N(1, 0.05) clipped to [0.9, 1.1]) when its
desired speed is not given, so traffic is heterogeneous but reproducible.
"""

from __future__ import annotations

import numpy as np

from cvd_sim.scenarios.categories import CATEGORY_ID, category_id
from cvd_sim.scenarios.map_queries import RoadMap
from cvd_sim.scenarios.schema import AgentSpec
from cvd_sim.world.behaviors import AgentState, StepContext, make_runner
from cvd_sim.world.following import RoadUsers

PEDESTRIAN_IDS = (CATEGORY_ID["pedestrian"],)


class Traffic:
    """All agents of a scenario. Arrays are indexed like `scenario.agents`."""

    def __init__(self, agents: list[AgentSpec], road_map: RoadMap, rng: np.random.Generator):
        self.road_map = road_map
        self.names = [a.id for a in agents]
        self.category = np.array([category_id(a.category) for a in agents], dtype=np.int64)
        self.lwh = np.array([a.dims for a in agents], dtype=np.float64).reshape(-1, 3)
        self.states = [AgentState(a.pose.x, a.pose.y, a.pose.yaw, a.speed) for a in agents]
        factors = np.clip(rng.normal(1.0, 0.05, size=len(agents)), 0.9, 1.1)
        self.runners = [
            make_runner(a.behavior, st, tuple(lwh), road_map, 0.0, float(f))
            for a, st, lwh, f in zip(agents, self.states, self.lwh, factors)
        ]

    def __len__(self) -> int:
        return len(self.states)

    def boxes(self) -> np.ndarray:
        """[N, 7] world-frame boxes (x, y, z centre, l, w, h, yaw)."""
        out = np.zeros((len(self), 7))
        if len(self):
            out[:, 0] = [s.x for s in self.states]
            out[:, 1] = [s.y for s in self.states]
            out[:, 2] = self.lwh[:, 2] / 2
            out[:, 3:6] = self.lwh
            out[:, 6] = [s.yaw for s in self.states]
        return out

    def velocities(self) -> np.ndarray:
        """[N, 2] world-frame velocities."""
        return np.array([[s.speed * np.cos(s.yaw), s.speed * np.sin(s.yaw)] for s in self.states]).reshape(
            -1, 2
        )

    def speeds(self) -> np.ndarray:
        return np.array([s.speed for s in self.states], dtype=np.float64)

    def accels(self) -> np.ndarray:
        return np.array([s.accel for s in self.states], dtype=np.float64)

    def road_users(self, ego_box: np.ndarray, ego_speed: float, ego_category: int) -> RoadUsers:
        """Agents then the ego (last row) as one read-only picture."""
        boxes = np.concatenate([self.boxes(), ego_box[None]], axis=0)
        return RoadUsers(
            xy=boxes[:, :2].copy(),
            yaw=boxes[:, 6].copy(),
            speed=np.append(self.speeds(), ego_speed),
            lwh=boxes[:, 3:6].copy(),
            category=np.append(self.category, ego_category),
        )

    def step(self, time: float, dt: float, ego_box: np.ndarray, ego_speed: float) -> None:
        """Advance every agent from `time` to `time + dt`; the ego is seen at `ego_box` [7] moving at `ego_speed`."""
        users = self.road_users(ego_box, ego_speed, CATEGORY_ID["car"])
        ctx = StepContext(time, users, ego_box[:2].copy(), self.road_map, PEDESTRIAN_IDS)
        for i, (runner, state) in enumerate(zip(self.runners, self.states)):
            runner.step(state, ctx, i, dt)
