"""Ego control inputs accepted by `World.step`: direct (acceleration, steering) or a waypoint trajectory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AccelSteer:
    """Longitudinal acceleration (m/s^2) and front-wheel steering angle (rad, + = left)."""

    accel: float
    steering: float


@dataclass(frozen=True)
class WaypointTrajectory:
    """Future rear-axle positions in the current ego frame: points [K, 2] (x fwd, y left) at times [K] s > 0.

    Tracked by the core `TrajectoryTracker` (pure pursuit + PI speed loop)."""

    points: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        pts, times = np.asarray(self.points, dtype=np.float64), np.asarray(self.times, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] < 2 or len(pts) == 0 or times.shape != (len(pts),):
            raise ValueError(
                f"WaypointTrajectory needs points [K, 2] and times [K], got {pts.shape}, {times.shape}"
            )
        if not (
            np.all(np.isfinite(pts))
            and np.all(np.isfinite(times))
            and times[0] > 0
            and np.all(np.diff(times) > 0)
        ):
            raise ValueError(
                "WaypointTrajectory: finite values and strictly increasing positive times required"
            )
        object.__setattr__(self, "points", pts[:, :2])
        object.__setattr__(self, "times", times)

    @classmethod
    def from_interval(cls, points: np.ndarray, interval: float) -> WaypointTrajectory:
        """Points [K, 2] spaced `interval` seconds apart, the first one `interval` s ahead (DriveArena: 0.5 s)."""
        points = np.asarray(points, dtype=np.float64)
        return cls(points, interval * np.arange(1, len(points) + 1))


def as_control(control) -> AccelSteer | WaypointTrajectory:
    """Normalise what a caller passes: AccelSteer, WaypointTrajectory, or a pair (accel, steering)."""
    if isinstance(control, AccelSteer | WaypointTrajectory):
        return control
    values = np.asarray(control, dtype=np.float64).reshape(-1)
    if values.shape != (2,) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"control must be (acceleration, steering), AccelSteer or WaypointTrajectory, got {control!r}"
        )
    return AccelSteer(float(values[0]), float(values[1]))
