"""Writes a `MapGeometry` as a nuScenes map-expansion JSON (v1.3) that `NuScenesMap` reads.

Lanes become `lane` polygons with arcline paths (one straight path per centreline segment), white lines
`lane_divider`, yellow lines `road_divider`, crosswalks `ped_crossing`, the drivable area `drivable_area`,
and the sidewalk band `walkway`.
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from cvd_sim.data.tokens import token
from cvd_sim.sensors.map_geometry import MapGeometry
from cvd_sim.sensors.static_world import SIDEWALK_WIDTH

STRAIGHT_RADIUS = 999.0  # arcline radius of straight paths (unused by the devkit on "S" segments)
MAP_VERSION = "1.3"


class _Builder:
    def __init__(self, name: str):
        self.name = name
        self.layers: dict = {
            k: []
            for k in (
                "node", "line", "polygon", "drivable_area", "road_segment", "road_block", "lane", "ped_crossing",
                "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider", "traffic_light", "lane_connector",
            )
        }  # fmt: skip
        self.layers["arcline_path_3"] = {}
        self.layers["connectivity"] = {}
        self._count = 0

    def _tok(self, kind: str) -> str:
        self._count += 1
        return token("map", self.name, kind, self._count)

    def nodes(self, coords) -> list[str]:
        out = []
        for x, y in np.asarray(coords, np.float64)[:, :2]:
            t = self._tok("node")
            self.layers["node"].append({"token": t, "x": round(float(x), 4), "y": round(float(y), 4)})
            out.append(t)
        return out

    def line(self, coords) -> str:
        t = self._tok("line")
        self.layers["line"].append({"token": t, "node_tokens": self.nodes(coords)})
        return t

    def polygons(self, geom) -> list[str]:
        """Polygon tokens of every part of a (Multi)Polygon."""
        out = []
        for part in shapely.get_parts(geom):
            if part.is_empty or part.area <= 0:
                continue
            t = self._tok("polygon")
            self.layers["polygon"].append(
                {
                    "token": t,
                    "exterior_node_tokens": self.nodes(np.asarray(part.exterior.coords)[:-1]),
                    "holes": [{"node_tokens": self.nodes(np.asarray(h.coords)[:-1])} for h in part.interiors],
                }
            )
            out.append(t)
        return out


def _arclines(points: np.ndarray) -> list[dict]:
    """One straight arcline path ("LSL" with zero-length turns) per polyline segment."""
    paths = []
    for a, b in itertools.pairwise(points):
        length = float(np.linalg.norm(b - a))
        if length < 1e-6:
            continue
        yaw = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
        paths.append(
            {
                "start_pose": [float(a[0]), float(a[1]), yaw],
                "end_pose": [float(b[0]), float(b[1]), yaw],
                "shape": "LSL",
                "radius": STRAIGHT_RADIUS,
                "segment_length": [0.0, length, 0.0],
            }
        )
    return paths


def map_expansion(geom: MapGeometry, name: str, canvas_margin: float = 100.0) -> dict:
    """The map-expansion JSON object of a map (coordinates must be >= 0, as in nuScenes)."""
    b = _Builder(name)
    road = geom.drivable_area
    da_token = b._tok("drivable_area")
    b.layers["drivable_area"].append({"token": da_token, "polygon_tokens": b.polygons(road)})
    segment_token = b._tok("road_segment")
    b.layers["road_segment"].append(
        {"token": segment_token, "polygon_token": b.polygons(road.convex_hull)[0], "is_intersection": False,
         "drivable_area_token": da_token}
    )  # fmt: skip
    for walk in b.polygons(road.buffer(SIDEWALK_WIDTH, join_style="mitre").difference(road)):
        b.layers["walkway"].append({"token": b._tok("walkway"), "polygon_token": walk})
    lane_tokens = []
    for centre in geom.lane_centerlines:
        pts = np.asarray(centre, np.float64)[:, :2]
        poly = LineString(pts).buffer(geom.lane_width / 2, cap_style="flat")
        if not isinstance(poly, Polygon):
            poly = max(shapely.get_parts(poly), key=lambda p: p.area)
        t = b._tok("lane")
        lane_tokens.append((t, pts))
        b.layers["lane"].append(
            {
                "token": t,
                "polygon_token": b.polygons(poly)[0],
                "lane_type": "CAR",
                "from_edge_line_token": b.line(pts[:2]),
                "to_edge_line_token": b.line(pts[-2:]),
                "left_lane_divider_segments": [],
                "right_lane_divider_segments": [],
            }
        )
        b.layers["arcline_path_3"][t] = _arclines(pts)
    for t, pts in lane_tokens:
        outgoing = [u for u, q in lane_tokens if u != t and np.linalg.norm(q[0] - pts[-1]) < 0.5]
        incoming = [u for u, q in lane_tokens if u != t and np.linalg.norm(q[-1] - pts[0]) < 0.5]
        b.layers["connectivity"][t] = {"incoming": incoming, "outgoing": outgoing}
    for line in geom.road_lines:
        line_token = b.line(line.points)
        if line.colour == "yellow":
            b.layers["road_divider"].append(
                {
                    "token": b._tok("road_divider"),
                    "line_token": line_token,
                    "road_segment_token": segment_token,
                }
            )
        else:
            b.layers["lane_divider"].append(
                {"token": b._tok("lane_divider"), "line_token": line_token, "lane_divider_segments": []}
            )
    for crosswalk in geom.crosswalks:
        for p in b.polygons(Polygon(crosswalk)):
            b.layers["ped_crossing"].append(
                {"token": b._tok("ped_crossing"), "polygon_token": p, "road_segment_token": segment_token}
            )
    minx, miny, maxx, maxy = road.bounds
    if minx < 0 or miny < 0:
        raise ValueError(
            f"map {name}: coordinates must be >= 0 in the nuScenes map frame, bounds {road.bounds}"
        )
    return {"version": MAP_VERSION, "canvas_edge": [maxx + canvas_margin, maxy + canvas_margin], **b.layers}
