"""Time to collision by constant-velocity projection (nuPlan `time_to_collision_within_bound`).

Ego and agents keep their current velocity; their box footprints are swept forward every `step` seconds up
to `horizon` (3 s); the TTC is the first projected time at which the ego overlaps an agent. Agents already
overlapping the ego now, and agents behind the ego (bearing > 150 deg), are ignored, and a stopped ego
(<= 0.05 m/s) has infinite TTC, as in nuPlan. The step passes when TTC >= 0.95 s.
"""

from __future__ import annotations

import numpy as np
import shapely

from cvd_sim.geometry.boxes import box_polygons
from cvd_sim.world.collisions import BEHIND_ANGLE, STOPPED_SPEED

TTC_HORIZON = 3.0
TTC_STEP = 0.1
TTC_BOUND = 0.95


def time_to_collision(
    ego_box: np.ndarray,
    ego_velocity: np.ndarray,
    agent_boxes: np.ndarray,
    agent_velocities: np.ndarray,
    horizon: float = TTC_HORIZON,
    step: float = TTC_STEP,
) -> float:
    """TTC in seconds (inf if none within the horizon). ego_box [7], ego_velocity [2], agents [N, 7], [N, 2]."""
    if len(agent_boxes) == 0 or np.linalg.norm(ego_velocity) <= STOPPED_SPEED:
        return float("inf")
    agent_boxes = np.asarray(agent_boxes, dtype=np.float64)
    ego_poly = box_polygons(ego_box[None])[0]
    overlapping_now = shapely.intersects(ego_poly, box_polygons(agent_boxes))
    rel = agent_boxes[:, :2] - ego_box[:2]
    bearing = np.arctan2(rel[:, 1], rel[:, 0]) - ego_box[6]
    behind = np.abs((bearing + np.pi) % (2 * np.pi) - np.pi) > BEHIND_ANGLE
    keep = ~overlapping_now & ~behind
    if not keep.any():
        return float("inf")
    boxes, vels = agent_boxes[keep], np.asarray(agent_velocities, dtype=np.float64)[keep]
    times = np.arange(1, round(horizon / step) + 1) * step
    ego_future = np.repeat(ego_box[None], len(times), 0)
    ego_future[:, :2] += times[:, None] * ego_velocity[None]
    agents_future = np.repeat(boxes[None], len(times), 0)
    agents_future[..., :2] += times[:, None, None] * vels[None]
    ego_polys = box_polygons(ego_future)
    agent_polys = box_polygons(agents_future.reshape(-1, 7)).reshape(len(times), -1)
    hits = shapely.intersects(ego_polys[:, None], agent_polys).any(axis=1)
    return float(times[np.argmax(hits)]) if hits.any() else float("inf")
