"""Privileged perception for baseline planners: the env's `info` turned into the core's `RoadUsers`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cvd_sim.world.following import RoadUsers


def road_users(info: dict[str, Any]) -> RoadUsers:
    """The agents (not the ego) reported in the env info, world frame."""
    n = min(int(info["num_boxes"]), len(info["boxes"]))
    valid = np.asarray(info["box_categories"][:n]) >= 0
    boxes = np.asarray(info["boxes"][:n], np.float64)[valid]
    vel = np.asarray(info["box_velocities"][:n], np.float64)[valid]
    return RoadUsers(
        xy=boxes[:, :2].copy(),
        yaw=boxes[:, 6].copy(),
        speed=np.hypot(vel[:, 0], vel[:, 1]),
        lwh=boxes[:, 3:6].copy(),
        category=np.asarray(info["box_categories"][:n])[valid].astype(np.int64),
    )


def subset(users: RoadUsers, keep: np.ndarray) -> RoadUsers:
    return RoadUsers(
        users.xy[keep], users.yaw[keep], users.speed[keep], users.lwh[keep], users.category[keep]
    )
