"""Privileged IDM lane follower with lane changes around stalled road users.

Longitudinal: IDM (Treiber et al. 2000) behind the nearest road user on the path being followed, stopping
for pedestrians on crosswalks and with the front bumper at the route end (like the core `Autopilot`).
Lateral: pure pursuit on that path. Lane changes: when a vehicle or static object stands still
(< `stalled_speed`) within `trigger_distance` ahead, the planner moves to a neighbouring lane whose stretch
around the ego is free, blending its lateral offset over `change_length(v)` metres; once the home (route)
lane is clear around the ego it changes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from cvd_sim.agents.perception import road_users, subset
from cvd_sim.envs.scenario_info import ScenarioInfo
from cvd_sim.scenarios.categories import CATEGORY_ID
from cvd_sim.scenarios.map_queries import Polyline2D

from cvd_sim.world.autopilot import pure_pursuit_steering
from cvd_sim.world.following import RoadUsers, crosswalk_spans, crosswalk_stop_gap, find_leader
from cvd_sim.world.idm import IDMParams, idm_acceleration

VULNERABLE = (CATEGORY_ID["pedestrian"], CATEGORY_ID["bicycle"])
LANE_CHAIN_LENGTH = 400.0  # m of successor lanes followed when changing lanes


@dataclass
class _LaneChange:
    path: Polyline2D
    s_start: float  # arc length on `path` where the change started
    d_start: float  # lateral offset of the ego from `path` at the start (m)
    length: float  # m over which the offset blends to 0

    def offset(self, s: float) -> float:
        tau = np.clip((s - self.s_start) / self.length, 0.0, 1.0)
        return float(self.d_start * (1.0 + np.cos(np.pi * tau)) / 2.0)


class IDMLaneFollower:
    control = "accel_steer"

    def __init__(
        self,
        params: IDMParams | None = None,
        lookahead_time: float = 0.8,
        stalled_speed: float = 0.5,
        trigger_distance: float = 40.0,
        clear_behind: float = 12.0,
        clear_ahead: float = 25.0,
    ):
        self.params = params or IDMParams()
        self.lookahead_time = lookahead_time
        self.stalled_speed, self.trigger_distance = stalled_speed, trigger_distance
        self.clear_behind, self.clear_ahead = clear_behind, clear_ahead
        self.info: ScenarioInfo | None = None

    def reset(self, scenario_info: ScenarioInfo) -> None:
        self.info = scenario_info
        self.home = scenario_info.route.path
        self.path = self.home  # the path being followed: home, or a neighbouring lane chain
        self.blend: _LaneChange | None = None  # the latest lane change onto `self.path`
        self._spans = crosswalk_spans(self.home, list(scenario_info.road_map.crosswalks.values()))

    @staticmethod
    def change_length(speed: float) -> float:
        """Distance over which a lane change blends (m): 2.5 s of travel, at least 15 m."""
        return max(15.0, 2.5 * speed)

    # ------------------------------------------------------------ helpers

    def _lane_chain(self, lane_id: str) -> Polyline2D:
        rmap = self.info.road_map
        chain, total = [lane_id], rmap.lane(lane_id).length
        while total < LANE_CHAIN_LENGTH:
            successors = [s for s in rmap.lane(chain[-1]).spec.successors if s not in chain]
            if not successors:
                break
            chain.append(successors[0])
            total += rmap.lane(successors[0]).length
        return Polyline2D(rmap.route_path(chain))

    def _occupied(
        self, path: Polyline2D, s_ego: float, users: RoadUsers, ahead: float, half_lane: float
    ) -> bool:
        """True when a road user overlaps the stretch [s_ego - clear_behind, s_ego + ahead] of `path`."""
        if len(users.xy) == 0:
            return False
        s, d = path.frenet(users.xy)
        reach = users.lwh[:, 0] / 2
        lateral = np.abs(d) < half_lane + users.lwh[:, 1] / 2
        return bool(np.any(lateral & (s + reach > s_ego - self.clear_behind) & (s - reach < s_ego + ahead)))

    def _stalled_ahead(self, path: Polyline2D, s_centre: float, users: RoadUsers) -> float:
        """Gap (m) to a stalled vehicle or static object ahead on `path` (inf if none within trigger_distance)."""
        keep = ~np.isin(users.category, VULNERABLE)
        gap, speed = find_leader(path, s_centre, self._half_length, self._half_width, subset(users, keep), -1)
        return gap if gap < self.trigger_distance and speed < self.stalled_speed else float("inf")

    def _try_change(self, x: float, y: float, yaw: float, speed: float, users: RoadUsers) -> None:
        rmap = self.info.road_map
        lane = rmap.lane(rmap.nearest_lane(x, y, yaw).lane_id)
        for neighbour in [*lane.spec.left_neighbors, *lane.spec.right_neighbors]:
            if neighbour not in rmap.lanes:
                continue
            path = self._lane_chain(neighbour)
            s, d = (float(v) for v in path.frenet([x, y]))
            half_lane = rmap.lane(neighbour).spec.width / 2
            if not self._occupied(path, s, users, self.clear_ahead + self.trigger_distance, half_lane):
                self.path, self.blend = path, _LaneChange(path, s, d, self.change_length(speed))
                return

    # ------------------------------------------------------------ act

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        x, y, yaw, speed = (float(v) for v in info["ego_state"][:4])
        vehicle, route = self.info.vehicle, self.info.route
        self._half_length, self._half_width = vehicle.length / 2, vehicle.width / 2
        users = road_users(info)
        centre = np.array([x, y]) + vehicle.center_offset * np.array([np.cos(yaw), np.sin(yaw)])
        s_home = float(self.home.frenet(centre)[0])

        on_home = self.path is self.home
        if on_home and self._stalled_ahead(self.home, s_home, users) < float("inf"):
            self._try_change(x, y, yaw, speed, users)
        elif not on_home:
            rmap = self.info.road_map
            half_lane = rmap.lane(rmap.nearest_lane(*self.home.xy(s_home)).lane_id).spec.width / 2
            if not self._occupied(self.home, s_home, users, self.clear_ahead, half_lane):
                s_back, d_back = (float(v) for v in self.home.frenet([x, y]))
                self.path, self.blend = (
                    self.home,
                    _LaneChange(self.home, s_back, d_back, self.change_length(speed)),
                )
        path, blend = self.path, self.blend

        s_centre = float(path.frenet(centre)[0])
        gap, lead_v = find_leader(path, s_centre, self._half_length, self._half_width, users, -1)
        stop = crosswalk_stop_gap(self._spans, s_home, self._half_length, users, (CATEGORY_ID["pedestrian"],))
        end_gap = route.s_end - (route.s(x, y) + vehicle.length - vehicle.rear_overhang) + self.params.min_gap
        gap, lead_v = min((gap, lead_v), (stop, 0.0), (max(end_gap, 0.0), 0.0))
        v0 = route.speed_limit(route.s(x, y))
        accel = float(
            idm_acceleration(
                np.array([speed]), np.array([v0]), np.array([gap]), np.array([lead_v]), self.params
            )[0]
        )

        s_rear = float(path.frenet([x, y])[0])
        lookahead = float(np.clip(self.lookahead_time * speed, 4.0, 15.0))
        offset = blend.offset(s_rear + lookahead) if blend is not None else 0.0
        target = path.xy(s_rear + lookahead, offset)
        c, s = np.cos(yaw), np.sin(yaw)
        rel = np.asarray(target) - np.array([x, y])
        local = np.array([rel[0] * c + rel[1] * s, -rel[0] * s + rel[1] * c])
        return np.array([accel, pure_pursuit_steering(local, vehicle.wheelbase)], np.float32)
