"""Ego autopilot: lane-following IDM along the ego route (pure pursuit on the route centreline).

Longitudinal: IDM towards the route speed limit, following the nearest road user ahead, stopping for
pedestrians on crosswalks and stopping with the front bumper at the end of the route.
Mild acceleration changes are jerk-limited to 4 m/s^3 (inside nuPlan's 4.13 comfort bound); braking harder
than the IDM comfortable deceleration is applied at once, since safety comes first.
Lateral: pure pursuit on the route path, lookahead clip(0.8 s * v, 4 m, 15 m).
"""

from __future__ import annotations

import numpy as np

from cvd_sim.world.control import AccelSteer
from cvd_sim.world.following import crosswalk_spans, crosswalk_stop_gap, find_leader
from cvd_sim.world.idm import IDMParams, idm_acceleration
from cvd_sim.world.traffic import PEDESTRIAN_IDS

MAX_JERK = 4.0  # m/s^3


def pure_pursuit_steering(target_in_ego: np.ndarray, wheelbase: float) -> float:
    """Steering angle (rad) bringing the rear axle onto an arc through target [2] (ego frame)."""
    dist = float(np.hypot(*target_in_ego))
    alpha = float(np.arctan2(target_in_ego[1], target_in_ego[0]))
    return float(np.arctan2(2.0 * wheelbase * np.sin(alpha), max(dist, 1e-6)))


class Autopilot:
    """Drives a `World`'s ego along its route. `autopilot(world) -> AccelSteer`."""

    def __init__(self, world, params: IDMParams | None = None, lookahead_time: float = 0.8):
        self.params = params or IDMParams()
        self.lookahead_time = lookahead_time
        route = world.route
        self._spans = crosswalk_spans(route.path, list(world.road_map.crosswalks.values()))

    def __call__(self, world) -> AccelSteer:
        ego, vehicle, route = world.ego, world.vehicle, world.route
        s_rear = route.s(ego.x, ego.y)
        s_centre = s_rear + vehicle.center_offset
        users = world.traffic.road_users(world.ego_box(), ego.speed, 0)
        gap, lead_v = find_leader(
            route.path, s_centre, vehicle.length / 2, vehicle.width / 2, users, exclude=len(users.xy) - 1
        )
        stop = crosswalk_stop_gap(self._spans, s_centre, vehicle.length / 2, users, PEDESTRIAN_IDS)
        # the route end acts as a stopped leader placed so that the front bumper halts on it
        end_gap = route.s_end - (s_rear + vehicle.length - vehicle.rear_overhang) + self.params.min_gap
        gap, lead_v = min((gap, lead_v), (stop, 0.0), (max(end_gap, 0.0), 0.0))
        accel = float(
            idm_acceleration(
                np.array([ego.speed]),
                np.array([route.speed_limit(s_rear)]),
                np.array([gap]),
                np.array([lead_v]),
                self.params,
            )[0]
        )
        if accel > -float(self.params.comfortable_decel):
            step = MAX_JERK * world.dt
            accel = float(np.clip(accel, ego.accel - step, ego.accel + step))
        lookahead = float(np.clip(self.lookahead_time * ego.speed, 4.0, 15.0))
        target = route.path.xy(s_rear + lookahead)
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        rel = target - np.array([ego.x, ego.y])
        local = np.array([rel[0] * c + rel[1] * s, -rel[0] * s + rel[1] * c])
        return AccelSteer(accel, pure_pursuit_steering(local, vehicle.wheelbase))
