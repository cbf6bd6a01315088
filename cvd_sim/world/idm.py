"""Intelligent Driver Model (Treiber, Hennecke & Helbing 2000), vectorised over vehicles.

  a = a_max [1 - (v / v0)^delta - (s* / s)^2],   s* = s0 + max(0, v T + v dv / (2 sqrt(a_max b)))
with gap s (bumper to bumper, m), approach rate dv = v - v_leader. Without a leader (gap = inf) the
interaction term is dropped. Equilibrium gap behind a leader at constant speed v:
  s_e = (s0 + v T) / sqrt(1 - (v / v0)^delta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvd_sim.scenarios.schema import IdmBehavior

MAX_BRAKE = 8.0  # m/s^2, physical clip on the IDM deceleration


@dataclass(frozen=True)
class IDMParams:
    """IDM parameters; each field a float or an array [N] (one value per vehicle)."""

    time_headway: float | np.ndarray = 1.5  # T, s
    min_gap: float | np.ndarray = 2.0  # s0, m
    max_accel: float | np.ndarray = 1.5  # a, m/s^2
    comfortable_decel: float | np.ndarray = 2.0  # b, m/s^2
    delta: float | np.ndarray = 4.0

    @classmethod
    def from_behavior(cls, behavior: IdmBehavior) -> IDMParams:
        return cls(
            behavior.time_headway,
            behavior.min_gap,
            behavior.max_accel,
            behavior.comfortable_decel,
            behavior.delta,
        )

    @classmethod
    def stack(cls, params: list[IDMParams]) -> IDMParams:
        """Per-vehicle arrays [N] from a list of scalar parameter sets."""
        fields = ("time_headway", "min_gap", "max_accel", "comfortable_decel", "delta")
        return cls(*(np.array([getattr(p, f) for p in params], dtype=np.float64) for f in fields))


def idm_acceleration(
    speed: np.ndarray,
    desired_speed: np.ndarray,
    gap: np.ndarray,
    leader_speed: np.ndarray,
    params: IDMParams,
) -> np.ndarray:
    """IDM acceleration [N] for speeds [N], desired speeds [N], gaps [N] (inf = no leader), leader speeds [N]."""
    v = np.asarray(speed, dtype=np.float64)
    v0 = np.maximum(np.asarray(desired_speed, dtype=np.float64), 1e-3)
    s = np.maximum(np.asarray(gap, dtype=np.float64), 1e-2)
    dv = v - np.asarray(leader_speed, dtype=np.float64)
    a, b = params.max_accel, params.comfortable_decel
    s_star = params.min_gap + np.maximum(0.0, v * params.time_headway + v * dv / (2.0 * np.sqrt(a * b)))
    interaction = np.where(np.isfinite(s), (s_star / np.where(np.isfinite(s), s, 1.0)) ** 2, 0.0)
    acc = a * (1.0 - (v / v0) ** params.delta - interaction)
    return np.maximum(acc, -MAX_BRAKE)


def idm_equilibrium_gap(speed: float, desired_speed: float, params: IDMParams) -> float:
    """Gap at which the IDM acceleration is zero behind a leader driving at the same constant speed."""
    return float(
        (params.min_gap + speed * params.time_headway)
        / np.sqrt(1.0 - (speed / desired_speed) ** params.delta)
    )
