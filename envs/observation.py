"""Observation space and the non-sensor parts of an observation: ego features and privileged boxes/map.

`ego` float32 [len(EGO_FEATURES)]: speed m/s, longitudinal acceleration m/s^2, yaw rate rad/s, steering rad,
route command one-hot (left, straight, right: the route's heading change over the next COMMAND_LOOKAHEAD m),
lateral offset from the route path (m, + = left), heading error to the route (rad), speed limit m/s, and
distance left to the route end (m).
Privileged (ego frame, nearest first, within `perception_range`): `boxes` [N, 7] (x, y, z, l, w, h, yaw),
`box_velocities` [N, 2], `box_categories` [N] (-1 = padding); `map` [M, P, 2] polylines resampled to P points,
`map_types` [M] (cvd_sim.data.map_polylines.MAP_TYPES: 0 divider, 1 crossing, 2 boundary, 3 lane centreline;
-1 = padding).
"""

from __future__ import annotations

import numpy as np
import shapely
from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.scenarios.map_queries import RoadMap
from gymnasium import spaces

from cvd_sim.geometry.transforms import apply_transform, invert_pose, rotate_vectors, wrap_angle
from cvd_sim.world.route import EgoRoute
from cvd_sim.world.world import WorldSnapshot

EGO_FEATURES = (
    "speed",
    "accel",
    "yaw_rate",
    "steering",
    "cmd_left",
    "cmd_straight",
    "cmd_right",
    "route_lateral_offset",
    "route_heading_error",
    "speed_limit",
    "distance_to_route_end",
)
COMMAND_LOOKAHEAD = 30.0  # m
COMMAND_TURN = 0.35  # rad of heading change that makes a turn command
MAP_TYPE_IDS = {"divider": 0, "ped_crossing": 1, "boundary": 2, "lane_centerline": 3}


def observation_space(config) -> spaces.Dict:
    """The `Dict` space for an `EnvConfig`."""
    parts: dict[str, spaces.Space] = {}
    v, h, w = len(config.cameras), config.image_height, config.image_width
    if config.sensors:
        parts["images"] = spaces.Box(0, 255, (v, h, w, 3), np.uint8)
        parts["depth"] = spaces.Box(0.0, np.inf, (v, h, w), np.float32)
    parts["ego"] = spaces.Box(-np.inf, np.inf, (len(EGO_FEATURES),), np.float32)
    if config.privileged:
        n, m, p = config.max_boxes, config.max_polylines, config.polyline_points
        parts["boxes"] = spaces.Box(-np.inf, np.inf, (n, 7), np.float32)
        parts["box_velocities"] = spaces.Box(-np.inf, np.inf, (n, 2), np.float32)
        parts["box_categories"] = spaces.Box(-1, len(CATEGORIES) - 1, (n,), np.int64)
        parts["map"] = spaces.Box(-np.inf, np.inf, (m, p, 2), np.float32)
        parts["map_types"] = spaces.Box(-1, len(MAP_TYPE_IDS) - 1, (m,), np.int64)
    return spaces.Dict(parts)


def route_command(route: EgoRoute, s: float) -> int:
    """0 = left, 1 = straight, 2 = right: the sign of the route's heading change over the next stretch."""
    path = route.path
    a = float(path.heading(np.clip(s, 0.0, path.length)))
    b = float(path.heading(np.clip(s + COMMAND_LOOKAHEAD, 0.0, path.length)))
    turn = float(wrap_angle(b - a))
    return 0 if turn > COMMAND_TURN else 2 if turn < -COMMAND_TURN else 1


def ego_features(snap: WorldSnapshot, route: EgoRoute) -> np.ndarray:
    """[len(EGO_FEATURES)] float32 (see module docstring)."""
    ego = snap.ego
    s_arr, d_arr = route.path.frenet([ego.x, ego.y])
    s, d = float(s_arr), float(d_arr)
    heading = float(route.path.heading(np.clip(s, 0.0, route.path.length)))
    command = np.zeros(3)
    command[route_command(route, s)] = 1.0
    return np.array(
        [
            ego.speed,
            ego.accel,
            ego.yaw_rate,
            ego.steering,
            *command,
            d,
            wrap_angle(ego.yaw - heading),
            route.speed_limit(s),
            route.s_end - s,
        ],
        dtype=np.float32,
    )


class MapFeatures:
    """World-frame map polylines of a road map, typed like `MAP_TYPE_IDS`, clipped and resampled per step."""

    def __init__(self, road_map: RoadMap):
        spec = road_map.spec
        geoms, types = [], []
        for line in spec.road_lines:
            geoms.append(shapely.LineString(line.polyline))
            types.append(MAP_TYPE_IDS["divider"])
        for polygon in road_map.crosswalks.values():
            geoms.append(polygon.exterior)
            types.append(MAP_TYPE_IDS["ped_crossing"])
        for edge in spec.road_edges:
            geoms.append(shapely.LineString(edge.polyline))
            types.append(MAP_TYPE_IDS["boundary"])
        for lane in road_map.lanes.values():
            geoms.append(shapely.LineString(lane.points))
            types.append(MAP_TYPE_IDS["lane_centerline"])
        self.geoms = np.array(geoms, dtype=object)
        self.types = np.array(types, dtype=np.int64)

    def polylines(
        self, world_to_ego: np.ndarray, centre: np.ndarray, radius: float, max_polylines: int, points: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ego-frame polylines [M, P, 2] float32 of the parts within `radius` m of `centre` [2], nearest first,
        and their types [M] int64 (-1 = padding)."""
        out = np.zeros((max_polylines, points, 2), np.float32)
        types = np.full(max_polylines, -1, np.int64)
        if len(self.geoms) == 0:
            return out, types
        disk = shapely.Point(centre).buffer(radius, quad_segs=8)
        clipped = shapely.intersection(self.geoms, disk)
        parts, kinds = [], []
        for geom, kind in zip(clipped, self.types):
            for part in shapely.get_parts(geom):
                if isinstance(part, shapely.LineString) and part.length > 1e-3:
                    parts.append(part)
                    kinds.append(kind)
        if not parts:
            return out, types
        order = np.argsort(
            shapely.distance(np.array(parts, dtype=object), shapely.Point(centre)), kind="stable"
        )
        for row, k in enumerate(order[:max_polylines]):
            line = parts[k]
            xy = shapely.get_coordinates(
                shapely.line_interpolate_point(line, np.linspace(0.0, line.length, points))
            )
            out[row] = apply_transform(world_to_ego, np.column_stack([xy, np.zeros(points)]))[:, :2]
            types[row] = kinds[k]
        return out, types


def privileged_boxes(snap: WorldSnapshot, max_boxes: int, radius: float) -> dict[str, np.ndarray]:
    """Ego-frame boxes [N, 7], velocities [N, 2] and categories [N] of the agents within `radius`, nearest first."""
    boxes = np.zeros((max_boxes, 7), np.float32)
    vel = np.zeros((max_boxes, 2), np.float32)
    cats = np.full(max_boxes, -1, np.int64)
    if len(snap.boxes):
        local = snap.boxes_in_ego()
        dist = np.hypot(local[:, 0], local[:, 1])
        keep = np.flatnonzero(dist <= radius)
        keep = keep[np.argsort(dist[keep], kind="stable")][:max_boxes]
        world_to_ego = invert_pose(snap.ego_to_world)
        v3 = np.column_stack([snap.velocities[keep], np.zeros(len(keep))])
        boxes[: len(keep)] = local[keep]
        vel[: len(keep)] = rotate_vectors(world_to_ego, v3)[:, :2]
        cats[: len(keep)] = snap.categories[keep]
    return {"boxes": boxes, "box_velocities": vel, "box_categories": cats}
