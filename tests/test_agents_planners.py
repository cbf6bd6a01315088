"""Baseline planners and the nuPlan-style adapter in closed loop."""

import numpy as np
import pytest
from cvd_sim.agents.evaluation import aggregate, evaluate
from cvd_sim.agents.idm_lane_follower import IDMLaneFollower
from cvd_sim.agents.nuplan_adapter import NuPlanAdapter, NuPlanStylePlanner, TrajectoryState
from cvd_sim.agents.protocol import Planner
from cvd_sim.agents.registry import PLANNERS, load_planner
from cvd_sim.envs.config import make_env_config
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.scenarios.builders import stalled_vehicle


def _drive(planner, scenario, **cfg):
    env = DrivingEnv(scenario=scenario, sensors=False, control=planner.control, **cfg)
    obs, info = env.reset(seed=0)
    planner.reset(env.scenario_info())
    trace = [info["ego_state"]]
    while True:
        obs, _, term, trunc, info = env.step(planner.act(obs, info))
        trace.append(info["ego_state"])
        if term or trunc:
            return info, np.array(trace)


def test_every_registered_planner_loads_and_follows_the_protocol():
    for name in PLANNERS:
        assert isinstance(load_planner(name), Planner)
    with pytest.raises(ValueError, match="unknown planner"):
        load_planner("nope")


def test_idm_changes_lanes_around_a_stalled_car_and_comes_back():
    scenario = stalled_vehicle(ego_speed=10.0, distance=40.0, warning_cone=False, duration=14.0)
    info, trace = _drive(IDMLaneFollower(), scenario)
    y0 = scenario.ego.pose.y
    car_x = scenario.agent("stalled").pose.x
    assert not info["collided"] and not info["offroad"]
    lateral = trace[:, 1] - y0
    beside = np.abs(trace[:, 0] - car_x) < 3.0
    assert beside.any() and np.all(lateral[beside] > 2.5)  # in the left lane (3.5 m over) when passing
    assert abs(lateral[-1]) < 0.5 and trace[-1, 0] > car_x + 20  # back in its lane, well past the car


def test_idm_stops_behind_a_stalled_car_when_the_other_lane_is_blocked():
    scenario = stalled_vehicle(ego_speed=10.0, distance=40.0, warning_cone=False, duration=11.0)
    data = scenario.model_dump()
    blocker = dict(data["agents"][0], id="blocker")
    x, y, _ = (scenario.agent("stalled").pose.x, scenario.agent("stalled").pose.y + 3.5, 0)
    blocker["pose"] = {"x": x, "y": y, "yaw": 0.0}
    data["agents"].append(blocker)
    blocked = type(scenario).model_validate(data)
    info, trace = _drive(IDMLaneFollower(), blocked)
    assert not info["collided"]
    assert trace[-1, 3] < 0.3 and trace[-1, 0] < x - 4.6  # standing, behind the car
    assert np.max(np.abs(trace[:, 1] - scenario.ego.pose.y)) < 0.5  # never left its lane


class _CircleArc(NuPlanStylePlanner):
    """A world-frame trajectory whose ego-frame waypoints are known: a left arc of radius 20 m from the ego."""

    def initialize(self, initialization):
        self.init = initialization

    def compute_planner_trajectory(self, current_input):
        ego, _ = current_input.history.current_state
        x, y, h = ego.rear_axle.x, ego.rear_axle.y, ego.rear_axle.heading
        states = []
        for t in np.arange(0.0, 5.01, 0.5):
            a = 10.0 * t / 20.0  # 10 m/s along a 20 m radius
            lx, ly = 20.0 * np.sin(a), 20.0 * (1 - np.cos(a))
            states.append(
                TrajectoryState(
                    ego.time_s + t,
                    x + lx * np.cos(h) - ly * np.sin(h),
                    y + lx * np.sin(h) + ly * np.cos(h),
                    h + a,
                )
            )
        return states


def test_nuplan_adapter_converts_world_trajectories_to_ego_waypoints():
    env = DrivingEnv(scenario="builder:stalled_vehicle", sensors=False, control="waypoints", num_waypoints=4)
    obs, info = env.reset(seed=0)
    adapter = NuPlanAdapter(_CircleArc())
    adapter.reset(env.scenario_info())
    assert adapter.planner.init.route_roadblock_ids == list(env.world.route.lanes)
    waypoints = adapter.act(obs, info)
    a = 10.0 * np.array([0.5, 1.0, 1.5, 2.0]) / 20.0
    np.testing.assert_allclose(waypoints, np.column_stack([20 * np.sin(a), 20 * (1 - np.cos(a))]), atol=1e-4)
    assert len(adapter.history.ego_states) == 1 and len(adapter.history.observations[0]) == 2


def test_idm_scores_higher_than_constant_velocity_on_library_scenarios():
    scenarios = ["cut_in_left", "plain_dusk_curve"]
    config = make_env_config(sensors=False, max_steps=70)
    idm = aggregate(evaluate("idm", scenarios, config))
    cv = aggregate(evaluate("constant_velocity", scenarios, config))
    assert idm["nuplan_score"] > cv["nuplan_score"] + 0.3
    assert idm["pdms"] > cv["pdms"] and cv["collision_ends"] >= 1 and idm["collision_ends"] == 0
