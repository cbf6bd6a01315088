"""Kinematic bicycle, IDM and the waypoint tracker against analytic solutions."""

from __future__ import annotations

import numpy as np
import pytest
from cvd_sim.scenarios.schema import VehicleParams

from cvd_sim.world.controller import TrajectoryTracker
from cvd_sim.world.dynamics import EgoState, bicycle_step
from cvd_sim.world.idm import IDMParams, idm_acceleration, idm_equilibrium_gap

PARAMS = VehicleParams()


@pytest.mark.parametrize("dt", [0.1, 0.5])
def test_constant_steering_traces_the_analytic_circle(dt):
    delta, v = 0.2, 6.0
    radius = PARAMS.wheelbase / np.tan(delta)
    state = EgoState(x=3.0, y=-2.0, yaw=0.7, speed=v, steering=delta)
    centre = np.array([3.0 - radius * np.sin(0.7), -2.0 + radius * np.cos(0.7)])
    yaw_unwrapped = 0.7
    for k in range(1, 120):
        new = bicycle_step(state, 0.0, delta, dt, PARAMS)
        yaw_unwrapped += (new.yaw - state.yaw + np.pi) % (2 * np.pi) - np.pi
        state = new
        assert np.hypot(state.x - centre[0], state.y - centre[1]) == pytest.approx(radius, abs=1e-9)
        assert yaw_unwrapped == pytest.approx(0.7 + v * k * dt / radius, abs=1e-9)
    assert state.yaw_rate == pytest.approx(v / radius)


def test_limits_on_acceleration_steering_and_steering_rate():
    state = EgoState(0.0, 0.0, 0.0, speed=5.0)
    s1 = bicycle_step(state, 100.0, 1.5, 0.1, PARAMS)
    assert s1.accel == pytest.approx(PARAMS.max_accel)
    assert s1.steering == pytest.approx(PARAMS.max_steer_rate * 0.1)
    for _ in range(50):
        s1 = bicycle_step(s1, 0.0, 1.5, 0.1, PARAMS)
    assert s1.steering == pytest.approx(PARAMS.max_steer)
    s2 = bicycle_step(state, -100.0, 0.0, 0.1, PARAMS)
    assert s2.accel == pytest.approx(-PARAMS.max_decel)
    # braking stops at zero speed, never reverses; the realised acceleration says so
    s3 = bicycle_step(EgoState(0.0, 0.0, 0.0, speed=0.3), -8.0, 0.0, 0.1, PARAMS)
    assert s3.speed == 0.0 and s3.accel == pytest.approx(-3.0)
    assert s3.x == pytest.approx(0.5 * 0.3 * 0.1)


def test_idm_reaches_the_analytic_equilibrium_gap():
    params = IDMParams(time_headway=1.5, min_gap=2.0, max_accel=1.5, comfortable_decel=2.0, delta=4.0)
    dt, v_leader, v0 = 0.05, 10.0, 15.0
    x_lead, x, v = 60.0, 0.0, 14.0
    for _ in range(int(300 / dt)):
        acc = idm_acceleration(
            np.array([v]), np.array([v0]), np.array([x_lead - x]), np.array([v_leader]), params
        )[0]
        x += v * dt + 0.5 * acc * dt * dt
        v = max(0.0, v + acc * dt)
        x_lead += v_leader * dt
    expected = (2.0 + 10.0 * 1.5) / np.sqrt(1 - (10.0 / 15.0) ** 4)
    assert idm_equilibrium_gap(v_leader, v0, params) == pytest.approx(expected)
    assert x_lead - x == pytest.approx(expected, rel=1e-3)
    assert v == pytest.approx(v_leader, abs=1e-3)
    # free road: converges to the desired speed
    free = idm_acceleration(np.array([v0]), np.array([v0]), np.array([np.inf]), np.array([0.0]), params)
    assert free[0] == pytest.approx(0.0)


def test_tracker_follows_a_circular_trajectory():
    radius, v, dt = 40.0, 8.0, 0.1
    tracker = TrajectoryTracker(PARAMS.wheelbase)
    state = EgoState(0.0, 0.0, 0.0, speed=5.0)
    horizon = np.arange(1, 11) * 0.5

    def circle(t):  # world position on the circle after travelling v t from the origin (centre (0, R))
        ang = v * t / radius
        return np.stack([radius * np.sin(ang), radius * (1 - np.cos(ang))], -1)

    for _ in range(150):
        # project the reference from the ego's current arc position onto future times, in the ego frame
        ang_now = np.arctan2(state.x, radius - state.y)
        t_ref = ang_now * radius / v
        world = circle(t_ref + horizon)
        c, s = np.cos(state.yaw), np.sin(state.yaw)
        rel = world - [state.x, state.y]
        ego = np.stack([rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c], -1)
        accel, steer = tracker.command(ego, horizon, state.speed, dt)
        state = bicycle_step(state, accel, steer, dt, PARAMS)
    assert np.hypot(state.x, state.y - radius) == pytest.approx(radius, abs=0.3)
    assert state.speed == pytest.approx(v, abs=0.2)
    assert state.steering == pytest.approx(np.arctan(PARAMS.wheelbase / radius), abs=0.02)
