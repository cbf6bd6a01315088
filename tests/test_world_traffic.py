"""Traffic behaviours, the World API and the autopilot on small scenarios with analytic answers."""

from __future__ import annotations

import numpy as np
import pytest
from cvd_sim.scenarios.schema import Scenario

from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.control import WaypointTrajectory
from cvd_sim.world.idm import IDMParams, idm_equilibrium_gap
from cvd_sim.world.world import World


def road(agents, ego=None, duration=10.0, length=1000.0) -> Scenario:
    """One eastbound lane at y = 0 (speed limit 10 m/s) with a crosswalk at x = 100..104."""
    return Scenario.model_validate(
        {
            "name": "traffic",
            "duration": duration,
            "dt": 0.1,
            "map": {
                "lanes": [
                    {"id": "east", "centerline": [[-100, 0], [length, 0]], "width": 3.5, "speed_limit": 10.0}
                ],
                "crosswalks": [
                    {"id": "cw", "polygon": [[100, -1.75], [104, -1.75], [104, 1.75], [100, 1.75]]}
                ],
            },
            "ego": ego or {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 0.0, "route": ["east"]},
            "agents": agents,
        }
    )


def agent(agent_id, x, y=0.0, category="car", speed=0.0, yaw=0.0, behavior=None):
    return {
        "id": agent_id,
        "category": category,
        "pose": {"x": x, "y": y, "yaw": yaw},
        "speed": speed,
        "behavior": behavior or {"type": "static"},
    }


def idm(**kw):
    return {"type": "idm", "route": ["east"], **kw}


def test_idm_follower_settles_at_equilibrium_gap_behind_the_ego():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 10.0, "route": ["east"]}
    follower = agent("f", -25.0, speed=11.0, behavior=idm(desired_speed=15.0))
    world = World.from_scenario(road([follower], ego, duration=40.0), with_expert=False)
    while not world.done:
        world.step((0.0, 0.0))
    snap = world.snapshot()
    gap = (snap.ego_box[0] - snap.ego_box[3] / 2) - (snap.boxes[0, 0] + snap.boxes[0, 3] / 2)
    expected = idm_equilibrium_gap(10.0, 15.0, IDMParams(1.5, 2.0, 1.5, 2.0, 4.0))
    assert gap == pytest.approx(expected, abs=0.05)
    assert world.traffic.speeds()[0] == pytest.approx(10.0, abs=0.01)


def test_idm_stops_for_a_pedestrian_on_the_crosswalk_and_goes_on_when_it_leaves():
    ped = agent(
        "ped",
        102.0,
        0.0,
        category="pedestrian",
        behavior={
            "type": "trigger",
            "condition": {"time": 20.0},
            "after": {
                "type": "waypoints",
                "points": [{"t": 0, "x": 102, "y": 0}, {"t": 4, "x": 102, "y": 8}],
            },
        },
    )
    car = agent("car", 40.0, speed=8.0, behavior=idm())
    world = World.from_scenario(road([ped, car], duration=40.0), with_expert=False)
    fronts = []
    while not world.done:
        world.step((0.0, 0.0))
        fronts.append(world.snapshot().boxes[1, 0] + 4.6 / 2)
    fronts = np.array(fronts)
    at_19s = fronts[189]
    assert 100.0 - 2.0 - 1.0 < at_19s <= 100.0  # halted just before the crosswalk entry (min gap 2 m)
    assert world.traffic.speeds()[1] > 5.0 and fronts[-1] > 110.0  # drove on once the pedestrian left
    # the pedestrian follows its waypoints after the trigger fired at 20 s: y = 2 (t - 20)
    assert world.snapshot().boxes[0, 1] == pytest.approx(8.0)


def test_trigger_on_ego_distance_and_constant_velocity_arc():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 10.0, "route": ["east"]}
    crossing = agent(
        "x",
        60.0,
        -1.0,
        category="pedestrian",
        yaw=np.pi / 2,
        behavior={
            "type": "trigger",
            "condition": {"ego_distance": 30.0},
            "after": {"type": "constant_velocity", "speed": 1.5},
        },
    )
    turning = agent("t", 300.0, 0.0, speed=5.0, behavior={"type": "constant_velocity", "yaw_rate": 0.25})
    world = World.from_scenario(road([crossing, turning], ego, duration=6.0), with_expert=False)
    start_times = []
    while not world.done:
        before = world.snapshot().boxes[0, 1]
        world.step((0.0, 0.0))
        if world.snapshot().boxes[0, 1] > before and not start_times:
            start_times.append(world.time - world.dt)
    # the ego centre (rear axle + 1.4 m) is 30 m from the pedestrian when 10 t + 1.4 >= 60 - sqrt(30^2 - 1)
    fire = np.ceil((60.0 - np.sqrt(900.0 - 1.0) - 1.4) / 10.0 / 0.1) * 0.1
    assert start_times[0] == pytest.approx(fire)
    # constant speed and yaw rate: a circle of radius v / omega = 20 m centred at (300, 20)
    x, y = world.snapshot().boxes[1, :2]
    assert np.hypot(x - 300.0, y - 20.0) == pytest.approx(20.0, abs=1e-9)


def test_waypoints_interpolate_linearly_and_hold_the_last_point():
    points = [{"t": 0, "x": 10, "y": 5}, {"t": 2, "x": 14, "y": 5}, {"t": 3, "x": 14, "y": 8}]
    walker = agent("w", 10.0, 5.0, category="pedestrian", behavior={"type": "waypoints", "points": points})
    world = World.from_scenario(road([walker], duration=5.0), with_expert=False)
    positions = []
    while not world.done:
        world.step((0.0, 0.0))
        positions.append(world.snapshot().boxes[0, :2])
    positions = np.array(positions)
    t = np.arange(1, 51) * 0.1
    np.testing.assert_allclose(positions[:, 0], np.interp(t, [0, 2, 3], [10, 14, 14]), atol=1e-9)
    np.testing.assert_allclose(positions[:, 1], np.interp(t, [0, 2, 3], [5, 5, 8]), atol=1e-9)
    assert world.traffic.speeds()[0] == 0.0


def test_same_seed_same_rollout_and_seed_changes_traffic():
    agents = [agent("a", 30.0, speed=5.0, behavior=idm()), agent("b", 60.0, speed=5.0, behavior=idm())]
    scenario = road(agents, duration=8.0)

    def rollout(seed):
        world = World.from_scenario(scenario, seed=seed, with_expert=False)
        pilot = Autopilot(world)
        while not world.done:
            world.step(pilot(world))
        return world.snapshot()

    a, b, c = rollout(3), rollout(3), rollout(4)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.ego == b.ego
    assert not np.allclose(a.boxes, c.boxes)


def test_autopilot_follows_without_collision_and_stops_at_the_route_end():
    lead = agent(
        "lead",
        30.0,
        speed=4.0,
        behavior={
            "type": "trigger",
            "condition": {"time": 8.0},
            "before": idm(desired_speed=4.0),
            "after": {"type": "static"},
        },
    )
    world = World.from_scenario(road([lead], duration=25.0, length=150.0), with_expert=False)
    pilot = Autopilot(world)
    while not world.done:
        world.step(pilot(world))
    scores = world.scores()
    assert scores.num_collisions == 0 and scores.ttc_within_bound == 1.0
    assert world.ego.speed < 0.05
    world2 = World.from_scenario(road([], duration=30.0, length=150.0))
    pilot2 = Autopilot(world2)
    while not world2.done:
        world2.step(pilot2(world2))
    # stopped with the front bumper at the lane end (x = 150), i.e. the route completed
    front = world2.ego.x + 4.6 - 0.9
    assert front == pytest.approx(150.0, abs=0.5)
    assert world2.scores().route_completion == pytest.approx(1.0, abs=0.005)
    assert world2.scores().ego_progress == 1.0  # the autopilot is its own reference


def test_waypoint_control_tracks_a_straight_trajectory_and_snapshot_frames():
    world = World.from_scenario(
        road([agent("p", 80.0, 3.0, category="pedestrian")], duration=6.0), with_expert=False
    )
    times = np.arange(1, 9) * 0.5
    while not world.done:
        # the world line y = 0.5 driven at 6 m/s, given in the current ego frame
        ego = world.ego
        world_xy = np.stack([ego.x + 6.0 * times, np.full(8, 0.5)], -1) - [ego.x, ego.y]
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        local = np.stack(
            [c * world_xy[:, 0] + s * world_xy[:, 1], -s * world_xy[:, 0] + c * world_xy[:, 1]], -1
        )
        snap = world.step(WaypointTrajectory(local, times))
    assert world.ego.speed == pytest.approx(6.0, abs=0.3)
    assert world.ego.y == pytest.approx(0.5, abs=0.1)
    boxes = snap.boxes_in_ego()
    dx, dy = 80.0 - world.ego.x, 3.0 - world.ego.y
    c, s = np.cos(world.ego.yaw), np.sin(world.ego.yaw)
    np.testing.assert_allclose(boxes[0, :2], [c * dx + s * dy, -s * dx + c * dy], atol=1e-9)
    assert snap.instance_ids.tolist() == [1] and snap.categories.tolist() == [3]


def test_a_goal_instead_of_a_route_ends_the_route_at_the_goal():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 5.0, "goal": [60.0, 0.5]}
    world = World.from_scenario(road([], ego, duration=25.0), with_expert=False)
    assert world.route.lanes == ["east"]
    assert world.route.length == pytest.approx(60.0 - (4.6 - 0.9))
    pilot = Autopilot(world)
    while not world.done:
        world.step(pilot(world))
    assert world.ego.x + 4.6 - 0.9 == pytest.approx(60.0, abs=0.5)
    assert world.scores().route_completion == pytest.approx(1.0, abs=0.01)
