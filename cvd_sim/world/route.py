"""The ego's route: a centreline path through the route lanes, its end, speed limits and progress."""

from __future__ import annotations

import numpy as np

from cvd_sim.scenarios.map_queries import Polyline2D, RoadMap
from cvd_sim.scenarios.schema import EgoSpec
from cvd_sim.world.behaviors import route_speed_limits

SPEED_LIMIT_SAMPLE = 5.0  # m between speed-limit samples along the route


class EgoRoute:
    """Route path [P, 2] (rear-axle line) from the ego's lane route, or to its goal by shortest route."""

    def __init__(self, ego: EgoSpec, road_map: RoadMap):
        lanes = list(ego.route)
        if not lanes:
            start = road_map.nearest_lane(ego.pose.x, ego.pose.y, ego.pose.yaw).lane_id
            goal_lane = road_map.nearest_lane(*ego.goal).lane_id
            lanes = road_map.shortest_route(start, goal_lane)
        self.lanes = lanes
        self.path = Polyline2D(road_map.route_path(lanes))
        self.s_start = float(self.path.frenet([ego.pose.x, ego.pose.y])[0])
        self.s_end = float(self.path.frenet(list(ego.goal))[0]) if ego.goal is not None else self.path.length
        front = ego.vehicle.length - ego.vehicle.rear_overhang
        # the route is complete when the front bumper reaches its end
        self.length = max(self.s_end - front - self.s_start, 1e-3)
        samples = np.linspace(0.0, self.path.length, max(2, int(self.path.length / SPEED_LIMIT_SAMPLE) + 1))
        self._limit_s = samples
        self._limit_v = route_speed_limits(road_map, lanes, self.path.xy(samples))

    def s(self, x: float, y: float) -> float:
        """Arc length of a rear-axle position on the route path."""
        return float(self.path.frenet([x, y])[0])

    def progress(self, x: float, y: float) -> float:
        """Distance travelled along the route from the start (m)."""
        return self.s(x, y) - self.s_start

    def speed_limit(self, s: float) -> float:
        return float(np.interp(s, self._limit_s, self._limit_v))
