"""Closed-loop checks and scores against hand-computed values on small scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from cvd_sim.scenarios.schema import Scenario

from cvd_sim.geometry.boxes import box_corners_bev
from cvd_sim.world.collisions import Collision, CollisionType, colliding_agents
from cvd_sim.world.scores import StepRecord, episode_scores, nuplan_score, pdms
from cvd_sim.world.ttc import time_to_collision
from cvd_sim.world.world import World

EGO_FRONT = 4.6 - 0.9  # default VehicleParams: rear axle to front bumper
EGO_REAR = 0.9


def straight_road(agents, ego, duration=5.0) -> Scenario:
    """Two opposite lanes along x (east at y=0, west at y=3.5), speed limit 10 m/s, a crosswalk at x=100."""
    return Scenario.model_validate(
        {
            "name": "metrics",
            "duration": duration,
            "dt": 0.1,
            "map": {
                "lanes": [
                    {"id": "east", "centerline": [[-50, 0], [300, 0]], "width": 3.5, "speed_limit": 10.0},
                    {"id": "west", "centerline": [[300, 3.5], [-50, 3.5]], "width": 3.5, "speed_limit": 10.0},
                ],
                "crosswalks": [
                    {"id": "cw", "polygon": [[100, -1.75], [104, -1.75], [104, 5.25], [100, 5.25]]}
                ],
            },
            "ego": ego,
            "agents": agents,
        }
    )


def run(scenario, controls) -> World:
    world = World.from_scenario(scenario, with_expert=False)
    for control in controls:
        world.step(control)
    return world


def car(agent_id, x, y, yaw=0.0, speed=0.0, behavior=None):
    return {
        "id": agent_id,
        "category": "car",
        "pose": {"x": x, "y": y, "yaw": yaw},
        "speed": speed,
        "behavior": behavior or {"type": "static"},
    }


# ---------------------------------------------------------------- geometry of collisions and TTC


def _sat_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Brute-force separating-axis test of two convex quads [4, 2] (touching counts as overlap)."""
    for poly in (a, b):
        for k in range(4):
            edge = poly[(k + 1) % 4] - poly[k]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() - 1e-9 or pb.max() < pa.min() - 1e-9:
                return False
    return True


def test_collision_detection_matches_bruteforce_polygon_check():
    rng = np.random.default_rng(0)
    for _ in range(30):
        ego = np.array([0, 0, 0.8, 4.6, 1.9, 1.6, rng.uniform(-np.pi, np.pi)])
        agents = np.column_stack(
            [
                rng.uniform(-8, 8, (40, 2)),
                np.full(40, 0.8),
                rng.uniform(0.5, 6, (40, 2)),
                np.full(40, 1.6),
                rng.uniform(-np.pi, np.pi, 40),
            ]
        )
        got = set(colliding_agents(ego, agents).tolist())
        corners = box_corners_bev(agents)
        expected = {i for i in range(40) if _sat_overlap(box_corners_bev(ego), corners[i])}
        assert got == expected


def test_time_to_collision_constant_velocity():
    ego = np.array([0.0, 0, 0.8, 4.0, 2.0, 1.6, 0.0])
    ahead = np.array([[20.0, 0, 0.8, 4.0, 2.0, 1.6, 0.0]])  # 16 m bumper to bumper
    assert time_to_collision(ego, np.array([10.0, 0]), ahead, np.zeros((1, 2))) == pytest.approx(1.6)
    # leader moving away at 6 m/s: closing at 4 m/s -> 4 s, beyond the 3 s horizon
    assert time_to_collision(ego, np.array([10.0, 0]), ahead, np.array([[6.0, 0]])) == np.inf
    # closing at 8 m/s -> 2.0 s
    assert time_to_collision(ego, np.array([10.0, 0]), ahead, np.array([[2.0, 0]])) == pytest.approx(2.0)
    # stopped ego and agents behind the ego are ignored
    assert time_to_collision(ego, np.zeros(2), ahead, np.array([[-10.0, 0]])) == np.inf
    behind = np.array([[-20.0, 0, 0.8, 4.0, 2.0, 1.6, 0.0]])
    assert time_to_collision(ego, np.array([1.0, 0]), behind, np.array([[15.0, 0]])) == np.inf


# ---------------------------------------------------------------- collisions in closed loop


def test_at_fault_collision_with_stopped_car_ahead():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 8.0, "route": ["east"]}
    world = run(straight_road([car("parked", 20.0, 0.0)], ego), [(0.0, 0.0)] * 30)
    collisions = [c for r in world.records for c in r.collisions]
    assert len(collisions) == 1  # counted once although the boxes keep overlapping
    c = collisions[0]
    # front bumper 3.7 m + 8 t reaches the parked car's rear at 17.7 m between t = 1.7 and 1.8 s
    assert c.time == pytest.approx(1.8)
    assert c.kind is CollisionType.STOPPED_TRACK and c.at_fault
    # before contact TTC is the first 0.1 s grid time at which 8 t covers the gap 14 - 0.8 k (inf beyond 3 s)
    for k, record in enumerate(world.records[:17], start=1):
        grid = np.ceil((14.0 - 0.8 * k) / 8.0 / 0.1 - 1e-9) * 0.1
        assert record.ttc == pytest.approx(grid if grid <= 3.0 else np.inf)
    assert world.records[17].ttc == np.inf  # already overlapping: a collision, not a TTC event
    scores = world.scores()
    assert scores.no_at_fault_collisions == 0.0 and scores.nuplan_score == 0.0 and scores.pdms == 0.0
    assert scores.ttc_within_bound == 0.0 and scores.num_at_fault_collisions == 1


def test_not_at_fault_when_rear_ended_while_stopped_or_moving():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 0.0, "route": ["east"]}
    rear = car("rear", -12.0, 0.0, speed=6.0, behavior={"type": "constant_velocity"})
    world = run(straight_road([rear], ego), [(0.0, 0.0)] * 30)
    (c,) = [c for r in world.records for c in r.collisions]
    assert c.kind is CollisionType.STOPPED_EGO and not c.at_fault
    assert world.scores().no_at_fault_collisions == 1.0

    ego_moving = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 2.0, "route": ["east"]}
    world = run(straight_road([rear], ego_moving), [(0.0, 0.0)] * 30)
    (c,) = [c for r in world.records for c in r.collisions]
    assert c.kind is CollisionType.ACTIVE_REAR and not c.at_fault
    s = world.scores()
    assert s.no_at_fault_collisions == 1.0 and s.num_collisions == 1 and s.num_at_fault_collisions == 0


@pytest.mark.parametrize(("ego_y", "agent_y", "at_fault"), [(1.4, 3.6, True), (0.0, 2.2, False)])
def test_lateral_collision_is_at_fault_only_when_straddling_lanes(ego_y, agent_y, at_fault):
    # a car 1 m behind the ego's centre drifts into its side: the ego's front bumper is never touched
    ego = {"pose": {"x": 0, "y": ego_y, "yaw": 0}, "speed": 8.0, "route": ["east"]}
    drifting = car("side", 0.4, agent_y, yaw=-0.1, speed=8.0, behavior={"type": "constant_velocity"})
    world = run(straight_road([drifting], ego), [(0.0, 0.0)] * 15)
    (c,) = [c for r in world.records for c in r.collisions]
    assert c.kind is CollisionType.ACTIVE_LATERAL and c.at_fault is at_fault
    assert world.checks.in_multiple_lanes(world.ego_box()) is at_fault


# ---------------------------------------------------------------- map compliance, comfort, speed


def test_off_road_excursion_distance_and_dac():
    yaw = -0.2
    ego = {"pose": {"x": 0, "y": 0, "yaw": yaw}, "speed": 10.0, "route": ["east"]}
    world = run(straight_road([], ego), [(0.0, 0.0)] * 20)
    # after t s the rear axle is 10 t along the heading and the front-right corner is lowest; the drivable
    # area's lower edge is y = -1.75
    fwd, left = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
    for record in world.records:
        front_right = 10.0 * record.time * fwd + EGO_FRONT * fwd - 0.95 * left
        assert record.offroad_distance == pytest.approx(max(0.0, -1.75 - front_right[1]), abs=1e-6)
    assert world.records[0].offroad_distance < 0.3 < world.records[-1].offroad_distance
    assert world.scores().drivable_area_compliance == 0.0
    # a short excursion within the 0.3 m tolerance still complies
    assert run(straight_road([], ego), [(0.0, 0.0)]).scores().drivable_area_compliance == 1.0


@pytest.mark.parametrize(("speed", "score"), [(5.0, 0.5), (7.0, 0.0), (1.5, 1.0)])
def test_wrong_way_driving_direction(speed, score):
    # the ego drives east in the westbound lane: every 1 s window holds `speed` metres of wrong-way progress
    ego = {"pose": {"x": 0, "y": 3.5, "yaw": 0}, "speed": speed, "route": ["east"]}
    world = run(straight_road([], ego), [(0.0, 0.0)] * 30)
    assert world.records[5].lane_progress == pytest.approx(-speed * 0.1)
    assert world.scores().driving_direction_compliance == score


def test_uncomfortable_jerk_and_comfortable_ramp():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 8.0, "route": ["east"]}
    harsh = run(straight_road([], ego), [(0.0, 0.0)] * 10 + [(-3.0, 0.0)] * 10)  # jerk -30 m/s^3
    assert harsh.scores().comfort == 0.0
    ramp = [(-0.3 * k, 0.0) for k in range(1, 8)] + [(-2.1, 0.0)] * 10  # jerk -3 m/s^3, within 4.13
    assert run(straight_road([], ego), ramp).scores().comfort == 1.0


def test_speed_limit_and_route_completion():
    ego = {"pose": {"x": 0, "y": 0, "yaw": 0}, "speed": 12.0, "route": ["east"]}
    world = run(straight_road([], ego, duration=10.0), [(0.0, 0.0)] * 100)
    s = world.scores()
    assert s.speed_limit_compliance == pytest.approx(1.0 - 2.0 / 2.23)
    # route from s = 50 (x = 0 on a lane starting at x = -50) to the front bumper at the lane end (s = 350)
    assert s.route_completion == pytest.approx(120.0 / (350.0 - EGO_FRONT - 50.0))


# ---------------------------------------------------------------- aggregate formulas


def _record(t, **kw):
    base = dict(
        time=t,
        speed=5.0,
        accel=0.0,
        yaw_rate=0.0,
        offroad_distance=0.0,
        lane_progress=0.5,
        route_progress=5.0 * t,
        expert_progress=10.0 * t,
        ttc=np.inf,
        speed_limit=10.0,
    )
    base.update(kw)
    return StepRecord(**base)


def test_aggregate_scores_by_hand():
    records = [_record(0.1 * (k + 1)) for k in range(100)]  # 10 s at half the expert's progress
    records[50].ttc = 0.5
    cone = Collision(5.0, 3, 6, CollisionType.STOPPED_TRACK, True)  # category 6 = traffic_cone
    records[60].collisions = [cone]
    s = episode_scores(records, route_length=100.0)
    assert s.ego_progress == pytest.approx(0.5) and s.making_progress == 1.0
    assert s.no_at_fault_collisions == 0.5 and s.ttc_within_bound == 0.0
    assert s.comfort == 1.0 and s.speed_limit_compliance == 1.0 and s.drivable_area_compliance == 1.0
    # nuPlan: 0.5 * 1 * 1 * 1 * (5 * 0.5 + 5 * 0 + 4 * 1 + 2 * 1) / 16
    assert s.nuplan_score == pytest.approx(0.5 * (2.5 + 4 + 2) / 16)
    assert nuplan_score(0.5, 1, 1, 1, 0.5, 0, 1, 1) == pytest.approx(s.nuplan_score)
    # PDMS: 0.5 * 1 * (5 * 0 + 5 * 0.5 + 2 * 1) / 12
    assert s.pdms == pytest.approx(0.5 * 4.5 / 12) == pdms(0.5, 1, 0, 0.5, 1)
    assert s.route_completion == pytest.approx(0.5)
    # per-step PDMS: EP = 0.5 once the expert passed 5 m (t > 0.5 s) and 1 before; TTC fails at one step,
    # the cone halves one step
    ep = np.array([1.0 if 10 * r.time < 5.0 else 0.5 for r in records])
    step = (5 * 1 + 5 * ep + 2) / 12
    step[50] = (5 * 0 + 5 * ep[50] + 2) / 12
    step[60] *= 0.5
    assert s.arena_score == pytest.approx(step.mean() * 0.5)
    # a vehicle collision at fault zeroes the collision multiplier; two cones too
    car_hit = Collision(1.0, 1, 0, CollisionType.ACTIVE_FRONT, True)
    assert episode_scores([_record(0.1, collisions=[car_hit])], 10.0).no_at_fault_collisions == 0.0
    assert episode_scores([_record(0.1, collisions=[cone, cone])], 10.0).no_at_fault_collisions == 0.0
    # making progress needs 0.2 of the expert's progress: at 0.1 the nuPlan score is 0
    slow = [_record(0.1 * (k + 1), route_progress=1.0 * 0.1 * (k + 1)) for k in range(100)]
    s_slow = episode_scores(slow, route_length=100.0)
    assert s_slow.ego_progress == pytest.approx(0.1) and s_slow.making_progress == 0.0
    assert s_slow.nuplan_score == 0.0 and s_slow.pdms == pytest.approx((5 + 5 * 0.1 + 2) / 12)
