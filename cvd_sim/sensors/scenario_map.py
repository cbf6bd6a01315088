"""`MapGeometry` of a scenario map (`MapSpec`), optionally shifted in x, y."""

from __future__ import annotations

import numpy as np
from shapely import affinity

from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import MapSpec
from cvd_sim.sensors.map_geometry import MapGeometry, RoadLine

# ScenarioNet road-line type -> (kind, colour) of the painted line.
LINE_STYLE = {
    "broken_single_white": ("broken", "white"),
    "solid_single_white": ("solid", "white"),
    "solid_double_white": ("double", "white"),
    "broken_single_yellow": ("broken", "yellow"),
    "broken_double_yellow": ("double", "yellow"),
    "solid_single_yellow": ("solid", "yellow"),
    "solid_double_yellow": ("double", "yellow"),
    "passing_double_yellow": ("double", "yellow"),
    "unknown": ("solid", "white"),
}


def map_geometry(spec: MapSpec, offset: tuple[float, float] = (0.0, 0.0)) -> MapGeometry:
    """Drivable area (union of lane surfaces), painted lines, crosswalks, edges and lane centrelines + offset."""
    shift = np.asarray(offset, np.float64)

    def pts(points) -> np.ndarray:
        return np.asarray(points, np.float64) + shift

    lanes = road_map(spec).lanes.values()
    return MapGeometry(
        drivable_area=affinity.translate(road_map(spec).drivable_area, *shift),
        road_lines=[RoadLine(pts(line.polyline), *LINE_STYLE[line.type]) for line in spec.road_lines],
        crosswalks=[pts(c.polygon) for c in spec.crosswalks],
        road_edges=[pts(e.polyline) for e in spec.road_edges],
        lane_centerlines=[pts(lane.points) for lane in lanes],
        lane_width=float(np.mean([lane.width for lane in lanes])),
    )
