"""Waypoint-trajectory tracking: pure pursuit for steering plus a PI speed loop for acceleration.

Planners (nuPlan, DriveArena style) output future positions in the ego frame (rear axle origin, x forward,
y left) at known times. The tracker turns them into the bicycle model's (acceleration, steering) command:

  steering = atan(2 L sin(alpha) / Ld)       pure pursuit (Coulter 1992) on the point at arc length Ld
  Ld       = clip(lookahead_time * v, min_lookahead, max_lookahead)
  v_ref    = speed of the trajectory at `speed_preview` s ahead (arc length / time between waypoints)
  accel    = kp (v_ref - v) + ki * integral(v_ref - v) + (v_ref' - v_ref) / preview   (feed-forward)
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TrackerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookahead_time: float = Field(0.8, gt=0, description="s")
    min_lookahead: float = Field(3.0, gt=0, description="m")
    max_lookahead: float = Field(15.0, gt=0, description="m")
    speed_preview: float = Field(0.3, ge=0, description="s")
    kp: float = Field(1.2, ge=0)
    ki: float = Field(0.1, ge=0)
    integral_limit: float = Field(1.0, ge=0, description="m/s*s, anti wind-up")


def _arc_lengths(points: np.ndarray) -> np.ndarray:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


class TrajectoryTracker:
    """Stateful tracker (keeps the speed integral); one per controlled vehicle. Call `reset()` per episode."""

    def __init__(self, wheelbase: float, params: TrackerParams | None = None) -> None:
        self.wheelbase = wheelbase
        self.params = params or TrackerParams()
        self._integral = 0.0

    def reset(self) -> None:
        self._integral = 0.0

    def command(
        self, waypoints: np.ndarray, times: np.ndarray, speed: float, dt: float
    ) -> tuple[float, float]:
        """(acceleration m/s^2, steering rad) to follow ego-frame waypoints [K, 2] reached at times [K] (s, > 0)."""
        waypoints = np.asarray(waypoints, dtype=np.float64)[:, :2]
        times = np.asarray(times, dtype=np.float64)
        if waypoints.ndim != 2 or len(waypoints) == 0 or len(times) != len(waypoints):
            raise ValueError(
                f"waypoints [K, 2] and times [K] must match, got {waypoints.shape} and {times.shape}"
            )
        pts = np.concatenate([[[0.0, 0.0]], waypoints])
        t = np.concatenate([[0.0], times])
        arc = _arc_lengths(pts)
        p = self.params

        # speed reference: trajectory progress rate around `speed_preview`
        def speed_at(time: float) -> float:
            tq = np.clip(time, t[0], t[-1])
            hi = int(np.clip(np.searchsorted(t, tq, side="right"), 1, len(t) - 1))
            return float((arc[hi] - arc[hi - 1]) / max(t[hi] - t[hi - 1], 1e-6))

        v_ref = speed_at(p.speed_preview)
        v_next = speed_at(p.speed_preview + dt)
        err = v_ref - speed
        self._integral = float(np.clip(self._integral + err * dt, -p.integral_limit, p.integral_limit))
        accel = p.kp * err + p.ki * self._integral + (v_next - v_ref) / dt

        total = arc[-1]
        if total < 0.5:  # nothing to steer towards: keep the wheels straight
            return float(accel), 0.0
        lookahead = float(np.clip(p.lookahead_time * speed, p.min_lookahead, p.max_lookahead))
        if lookahead <= total:
            target = np.array([np.interp(lookahead, arc, pts[:, 0]), np.interp(lookahead, arc, pts[:, 1])])
        else:  # extend the last segment straight on
            direction = pts[-1] - pts[-2]
            direction = direction / max(np.linalg.norm(direction), 1e-9)
            target = pts[-1] + direction * (lookahead - total)
        dist = float(np.linalg.norm(target))
        alpha = np.arctan2(target[1], target[0])
        steering = np.arctan2(2.0 * self.wheelbase * np.sin(alpha), dist)
        return float(accel), float(steering)
