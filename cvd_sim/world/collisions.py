"""Ego collisions on oriented box polygons (shapely), classified at-fault or not as nuPlan does.

nuPlan (`nuplan/planning/metrics/utils/collision_utils.py`, `no_ego_at_fault_collisions.py`):
  ego speed <= 0.05 m/s                                    -> STOPPED_EGO       (not at fault)
  else agent speed <= 0.05 m/s                             -> STOPPED_TRACK     (at fault)
  else agent centre behind ego (bearing > 150 deg)         -> ACTIVE_REAR       (not at fault)
  else ego front bumper touches the agent                  -> ACTIVE_FRONT      (at fault)
  else                                                     -> ACTIVE_LATERAL    (at fault only when the
                                                              ego is in several lanes or off the drivable area)
Only the first step of a collision with a given agent counts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import shapely

from cvd_sim.geometry.boxes import box_polygons, front_bumper

STOPPED_SPEED = 0.05  # m/s, nuPlan's stopped_speed_threshold
BEHIND_ANGLE = np.deg2rad(150.0)  # nuPlan's is_agent_behind angle tolerance


class CollisionType(enum.Enum):
    STOPPED_EGO = "stopped_ego"
    STOPPED_TRACK = "stopped_track"
    ACTIVE_FRONT = "active_front"
    ACTIVE_REAR = "active_rear"
    ACTIVE_LATERAL = "active_lateral"


@dataclass(frozen=True)
class Collision:
    time: float
    agent_id: int
    category: int
    kind: CollisionType
    at_fault: bool


def colliding_agents(ego_box: np.ndarray, agent_boxes: np.ndarray) -> np.ndarray:
    """Indices of agents [N, 7] whose BEV footprint intersects the ego's [7] (touching counts)."""
    if len(agent_boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    ego_poly = box_polygons(ego_box[None])[0]
    return np.flatnonzero(shapely.intersects(ego_poly, box_polygons(agent_boxes)))


def is_agent_behind(ego_pose_xy_yaw: np.ndarray, agent_xy: np.ndarray) -> bool:
    """nuPlan's test: bearing from the ego heading to the agent centre exceeds 150 degrees."""
    x, y, yaw = ego_pose_xy_yaw
    bearing = np.arctan2(agent_xy[1] - y, agent_xy[0] - x) - yaw
    bearing = (bearing + np.pi) % (2 * np.pi) - np.pi
    return bool(abs(bearing) > BEHIND_ANGLE)


def classify_collision(
    ego_box: np.ndarray,
    ego_rear_axle: np.ndarray,
    ego_speed: float,
    agent_box: np.ndarray,
    agent_speed: float,
    ego_in_multiple_lanes_or_offroad: bool,
) -> tuple[CollisionType, bool]:
    """(type, at_fault) of one collision. ego_rear_axle [3] = (x, y, yaw); boxes [7] world frame."""
    if ego_speed <= STOPPED_SPEED:
        return CollisionType.STOPPED_EGO, False
    if agent_speed <= STOPPED_SPEED:
        return CollisionType.STOPPED_TRACK, True
    if is_agent_behind(ego_rear_axle, agent_box[:2]):
        return CollisionType.ACTIVE_REAR, False
    if front_bumper(ego_box).intersects(box_polygons(agent_box[None])[0]):
        return CollisionType.ACTIVE_FRONT, True
    return CollisionType.ACTIVE_LATERAL, bool(ego_in_multiple_lanes_or_offroad)
