"""Map checks of the ego footprint for the step metrics: off-road distance, lanes under the ego, lane direction."""

from __future__ import annotations

import numpy as np
import shapely

from cvd_sim.geometry.boxes import box_corners_bev
from cvd_sim.scenarios.map_queries import RoadMap


class MapChecks:
    """Per-map helpers; the drivable area is prepared once for fast repeated queries."""

    def __init__(self, road_map: RoadMap):
        self.road_map = road_map
        self.drivable = road_map.drivable_area
        shapely.prepare(self.drivable)

    def offroad_distance(self, box: np.ndarray) -> float:
        """Largest distance (m) of a box's [7] four corners outside the drivable area (0 when all inside)."""
        corners = shapely.points(box_corners_bev(box))
        return float(np.max(shapely.distance(self.drivable, corners)))

    def in_multiple_lanes(self, box: np.ndarray) -> bool:
        """True when no one lane holds all four corners and two corners sit in lanes not joined end to end
        (nuPlan's 'ego in multiple lanes': straddling a lane boundary)."""
        rmap = self.road_map
        corner_lanes = [set(rmap.lanes_at(float(x), float(y))) for x, y in box_corners_bev(box)]
        if set.intersection(*corner_lanes):
            return False
        for i in range(4):
            for j in range(i + 1, 4):
                a, b = corner_lanes[i], corner_lanes[j]
                if (
                    a
                    and b
                    and not a & b
                    and not any(
                        rmap.link_kind(p, q) == "successor" or rmap.link_kind(q, p) == "successor"
                        for p in a
                        for q in b
                    )
                ):
                    return True
        return False

    def lane_progress(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float | None]:
        """(progress along the lane direction, speed limit of that lane) for a move (x0, y0) -> (x1, y1).

        Among the lanes under the end point, the one in whose direction the move is most positive is used
        (so driving in any lane's direction is compliant); (0, None) off the lanes.
        """
        lanes = self.road_map.lanes_at(x1, y1)
        if not lanes:
            return 0.0, None
        move = np.array([x1 - x0, y1 - y0])
        best, limit = -np.inf, None
        for lane_id in lanes:
            lane = self.road_map.lane(lane_id)
            s, _ = lane.frenet([x1, y1])
            heading = float(lane.heading(np.clip(s, 0.0, lane.length)))
            progress = float(move @ np.array([np.cos(heading), np.sin(heading)]))
            if progress > best:
                best, limit = progress, lane.spec.speed_limit
        return best, limit
