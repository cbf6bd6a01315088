"""Ego dynamics: a kinematic bicycle model referenced to the rear axle, with actuator limits.

State: rear-axle pose (x, y, yaw), speed v >= 0, steering angle delta. One step of length dt:
  accel  = clip(a_cmd, -max_decel, max_accel)
  delta' = delta + clip(clip(delta_cmd, -max_steer, max_steer) - delta, -max_steer_rate dt, +max_steer_rate dt)
  v'     = max(0, v + accel dt)
  the rear axle then moves the distance s = (v + v') dt / 2 along a circular arc of curvature tan(delta') / L,
  integrated exactly, so a constant steering angle traces the analytic circle of radius L / tan(delta)
  at any dt. Yaw rate = v tan(delta) / L. Geometry and limits come from the scenario's `VehicleParams`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvd_sim.scenarios.schema import VehicleParams


@dataclass(frozen=True)
class EgoState:
    """Ego state at the rear axle, world frame. Angles in radians, speeds in m/s."""

    x: float
    y: float
    yaw: float
    speed: float = 0.0
    accel: float = 0.0
    steering: float = 0.0
    yaw_rate: float = 0.0

    def box(self, params: VehicleParams) -> np.ndarray:
        """Ego box [7] (x, y, z centre, l, w, h, yaw), world frame, on the ground."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        off = params.center_offset
        return np.array(
            [
                self.x + off * c,
                self.y + off * s,
                params.height / 2,
                params.length,
                params.width,
                params.height,
                self.yaw,
            ]
        )

    def velocity(self) -> np.ndarray:
        """[2] world-frame velocity of the rear axle."""
        return self.speed * np.array([np.cos(self.yaw), np.sin(self.yaw)])


def arc_advance(x, y, yaw, distance, curvature):
    """Move poses along circular arcs (vectorised): distance s, curvature k -> (x', y', yaw').

    Exact for constant curvature; the straight-line limit k -> 0 is handled without division by zero.
    """
    dyaw = distance * curvature
    small = np.abs(dyaw) < 1e-9
    safe = np.where(small, 1.0, dyaw)
    # chord factors: sin(d)/d and (1 - cos(d))/d, with their Taylor limits for tiny d
    f_sin = np.where(small, 1.0 - dyaw**2 / 6.0, np.sin(safe) / safe)
    f_cos = np.where(small, dyaw / 2.0, (1.0 - np.cos(safe)) / safe)
    c, s = np.cos(yaw), np.sin(yaw)
    fwd, left = distance * f_sin, distance * f_cos
    return x + fwd * c - left * s, y + fwd * s + left * c, yaw + dyaw


def bicycle_step(
    state: EgoState, accel_cmd: float, steer_cmd: float, dt: float, params: VehicleParams
) -> EgoState:
    """One step of the limited kinematic bicycle (see module docstring). Returns the new state."""
    accel = float(np.clip(accel_cmd, -params.max_decel, params.max_accel))
    target = float(np.clip(steer_cmd, -params.max_steer, params.max_steer))
    max_delta = params.max_steer_rate * dt
    steering = state.steering + float(np.clip(target - state.steering, -max_delta, max_delta))
    new_speed = float(np.clip(state.speed + accel * dt, 0.0, params.max_speed))
    accel = (new_speed - state.speed) / dt  # the acceleration actually realised (stopping at 0, max speed)
    distance = 0.5 * (state.speed + new_speed) * dt
    curvature = np.tan(steering) / params.wheelbase
    x, y, yaw = arc_advance(state.x, state.y, state.yaw, distance, curvature)
    yaw = float((yaw + np.pi) % (2 * np.pi) - np.pi)
    return replace(
        state,
        x=float(x),
        y=float(y),
        yaw=yaw,
        speed=new_speed,
        accel=accel,
        steering=steering,
        yaw_rate=float(new_speed * curvature),
    )
