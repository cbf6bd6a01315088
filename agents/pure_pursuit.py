"""Pure-pursuit route follower: steers onto the route path, holds the speed limit; blind to other road users.

steering = atan(2 L sin(alpha) / Ld) on the route point Ld = clip(lookahead_time * v, 4 m, 15 m) ahead;
acceleration = clip(kp * (v_limit - v), -max_decel, max_accel), stopping the front bumper at the route end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cvd_sim.envs.scenario_info import ScenarioInfo

from cvd_sim.world.autopilot import pure_pursuit_steering


def route_target_in_ego(scenario_info: ScenarioInfo, ego_state: np.ndarray, lookahead: float) -> np.ndarray:
    """Route point `lookahead` m ahead of the ego's projection, in the ego frame [2]. ego_state [7]
    (x, y, yaw, speed, accel, steering, yaw_rate) as in the env's info."""
    x, y, yaw = ego_state[:3]
    route = scenario_info.route
    target = route.path.xy(route.s(x, y) + lookahead)
    c, s = np.cos(yaw), np.sin(yaw)
    rel = target - np.array([x, y])
    return np.array([rel[0] * c + rel[1] * s, -rel[0] * s + rel[1] * c])


class PurePursuitPlanner:
    control = "accel_steer"

    def __init__(
        self, lookahead_time: float = 0.8, kp: float = 0.8, max_accel: float = 1.5, max_decel: float = 4.0
    ):
        self.lookahead_time, self.kp = lookahead_time, kp
        self.max_accel, self.max_decel = max_accel, max_decel
        self.info: ScenarioInfo | None = None

    def reset(self, scenario_info: ScenarioInfo) -> None:
        self.info = scenario_info

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        state = info["ego_state"]
        speed = float(state[3])
        route, vehicle = self.info.route, self.info.vehicle
        s = route.s(state[0], state[1])
        # brake so that the front bumper halts at the route end: v^2 = 2 b d
        to_end = route.s_end - (s + vehicle.length - vehicle.rear_overhang)
        v_ref = min(route.speed_limit(s), float(np.sqrt(2.0 * 2.0 * max(to_end, 0.0))))
        accel = float(np.clip(self.kp * (v_ref - speed), -self.max_decel, self.max_accel))
        lookahead = float(np.clip(self.lookahead_time * speed, 4.0, 15.0))
        steer = pure_pursuit_steering(route_target_in_ego(self.info, state, lookahead), vehicle.wheelbase)
        return np.array([accel, steer], np.float32)
