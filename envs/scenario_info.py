"""`ScenarioInfo`: what a planner is told at the start of an episode (route, goal, map, timing, vehicle)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cvd_sim.scenarios.map_queries import RoadMap
from cvd_sim.scenarios.schema import Scenario, VehicleParams

from cvd_sim.world.route import EgoRoute


@dataclass(frozen=True)
class ScenarioInfo:
    """scenario; road_map (lane geometry, routing); route (the ego's route path, world frame); goal [2] world
    frame (the route end when the scenario gives none); dt s; vehicle; control mode of the env and, for
    waypoints, the times [K] s of the waypoints it expects."""

    scenario: Scenario
    road_map: RoadMap
    route: EgoRoute
    goal: np.ndarray
    dt: float
    vehicle: VehicleParams
    control: str
    waypoint_times: np.ndarray
