"""Oriented boxes in the ground plane: shapely polygons of agents and of the ego."""

from __future__ import annotations

import math

import numpy as np
from cvd_sim.scenarios.schema import AgentSpec, EgoSpec
from shapely.geometry import Polygon


def box_corners(x: float, y: float, length: float, width: float, yaw: float) -> np.ndarray:
    """Corners [4, 2] of a box centred at (x, y), counter-clockwise from front-left."""
    c, s = math.cos(yaw), math.sin(yaw)
    hl, hw = length / 2, width / 2
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.array([x, y])


def box_polygon(x: float, y: float, length: float, width: float, yaw: float) -> Polygon:
    """Shapely polygon of a box centred at (x, y) with heading `yaw`."""
    return Polygon(box_corners(x, y, length, width, yaw))


def agent_polygon(agent: AgentSpec) -> Polygon:
    """Footprint of an agent at its initial pose."""
    length, width, _ = agent.dims
    return box_polygon(agent.pose.x, agent.pose.y, length, width, agent.pose.yaw)


def ego_center(ego: EgoSpec) -> tuple[float, float]:
    """World xy of the ego box centre (the ego pose is its rear axle)."""
    off = ego.vehicle.center_offset
    return ego.pose.x + off * math.cos(ego.pose.yaw), ego.pose.y + off * math.sin(ego.pose.yaw)


def ego_polygon(ego: EgoSpec) -> Polygon:
    """Footprint of the ego at its initial pose."""
    cx, cy = ego_center(ego)
    return box_polygon(cx, cy, ego.vehicle.length, ego.vehicle.width, ego.pose.yaw)
