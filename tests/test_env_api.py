"""DrivingEnv: Gymnasium/SB3 API checks, determinism, invalid actions, scripted collision, reward, observations."""

import subprocess
import sys
import warnings

import cvd_sim.envs  # noqa: F401  (registers the ids)
import gymnasium as gym
import numpy as np
import pytest
from cvd_sim.envs.config import EnvConfigError, RewardWeights
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.scenarios.builders import EGO_START_S, stalled_vehicle
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

SMALL = {"image_height": 32, "image_width": 56}


@pytest.mark.parametrize("control", ["accel_steer", "waypoints"])
def test_gymnasium_and_sb3_check_env(control):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # recommendations (normalised actions, unbounded boxes) are not errors
        env = gym.make(
            "cvd_sim/Raycast-v0",
            control=control,
            max_steps=4,
            privileged=True,
            render_mode="rgb_array",
            **SMALL,
        )
        check_env(env.unwrapped)
        sb3_check_env(DrivingEnv(control=control, max_steps=4, privileged=True, **SMALL))


def test_make_without_import_through_module_prefixed_id():
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('cvd_sim.envs:cvd_sim/Raycast-v0', image_height=16, image_width=32, sensors=False)\n"
        "obs, info = env.reset(seed=0)\n"
        "assert 'cvd_sim.envs' in sys.modules and obs['ego'].shape == (11,)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return out, rewards


def test_same_seed_gives_identical_episode_and_scenario_sampling_follows_seed():
    cfg = dict(scenario=["builder:stalled_vehicle", "builder:cut_in"], randomize_traffic=True, **SMALL)
    space = DrivingEnv(**cfg).action_space
    space.seed(3)
    actions = [space.sample() * 0.3 for _ in range(8)]
    a_obs, a_rew = _rollout(DrivingEnv(**cfg), actions, seed=11)
    b_obs, b_rew = _rollout(DrivingEnv(**cfg), actions, seed=11)
    assert a_rew == b_rew
    for x, y in zip(a_obs, b_obs):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    names = set()
    env = DrivingEnv(sensors=False, scenario=cfg["scenario"])
    for seed in range(6):
        env.reset(seed=seed)
        names.add(env.scenario.name)
    assert names == {"stalled_vehicle", "cut_in_left"}
    env.reset(options={"scenario": "builder:merge"})
    assert env.scenario.name == "merge"


def test_invalid_actions_raise_and_out_of_range_actions_are_clipped():
    env = DrivingEnv(sensors=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step([np.nan, 0.0])
    with pytest.raises(ValueError, match="shape"):
        env.step([1.0, 0.0, 0.0])
    with pytest.raises(RuntimeError, match="reset"):
        DrivingEnv(sensors=False).step([0.0, 0.0])
    clipped_env = DrivingEnv(sensors=False)
    clipped_env.reset(seed=0)
    obs_a, _, _, _, info_a = env.step([100.0, -5.0])
    obs_b, _, _, _, info_b = clipped_env.step([env.config.max_accel, -env.config.max_steer])
    assert info_a["action_clipped"] and not info_b["action_clipped"]
    np.testing.assert_array_equal(obs_a["ego"], obs_b["ego"])
    wp = DrivingEnv(sensors=False, control="waypoints", num_waypoints=4)
    wp.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        wp.step(np.zeros((3, 2)))


def test_scripted_collision_terminates_at_the_analytic_step_with_metrics():
    """Constant 12 m/s straight ahead: the front bumper meets the warning cone 8 m before the stalled car."""
    scenario = stalled_vehicle(ego_speed=12.0, distance=50.0)
    env = DrivingEnv(
        scenario=scenario,
        sensors=False,
        reward=RewardWeights(progress=0.1, collision=10.0, discomfort=0.0, wrong_way=0.0),
    )
    env.reset(seed=0)
    vehicle = scenario.ego.vehicle
    front = vehicle.length - vehicle.rear_overhang
    car_centre = EGO_START_S + front + 50.0 + 4.6 / 2
    cone_rear = car_centre - 4.6 / 2 - 8.0 - 0.4 / 2  # the cone is 0.4 m long
    expected_step = int(np.ceil((cone_rear - (EGO_START_S + front)) / (12.0 * scenario.dt)))
    rewards = []
    while True:
        _, r, term, trunc, info = env.step([0.0, 0.0])
        rewards.append(r)
        if term or trunc:
            break
    assert term and not trunc and info["collided"] and info["step"] == expected_step
    assert info["metrics"]["collisions"] == 1 and info["metrics"]["at_fault_collisions"] == 1
    scores = info["episode_scores"]
    assert scores["num_at_fault_collisions"] == 1 and scores["no_at_fault_collisions"] == 0.5  # static object
    # every step before the collision earns 0.1 per metre at 1.2 m per step
    np.testing.assert_allclose(rewards[:-1], 0.12, atol=1e-9)
    assert rewards[-1] == pytest.approx(0.12 - 10.0)


def test_offroad_terminates_and_fails_drivable_area():
    env = DrivingEnv(sensors=False)
    env.reset(seed=0)
    for _ in range(200):
        _, _, term, trunc, info = env.step([0.0, -0.6])  # hard right, off the road edge
        if term or trunc:
            break
    assert term and info["offroad"] and not info["collided"]
    assert info["metrics"]["offroad_distance"] > env.config.offroad_tolerance
    assert info["episode_scores"]["drivable_area_compliance"] == 0.0


def test_observation_contents_match_the_scenario_geometry():
    scenario = stalled_vehicle(ego_speed=12.0, distance=30.0)
    env = DrivingEnv(scenario=scenario, privileged=True, render_mode="rgb_array", **SMALL)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["images"].shape == (6, 32, 56, 3) and obs["depth"].shape == (6, 32, 56)
    assert obs["ego"][0] == pytest.approx(12.0) and list(obs["ego"][4:7]) == [0.0, 1.0, 0.0]
    assert obs["ego"][7] == pytest.approx(0.0, abs=1e-6)  # on the route centreline
    front = scenario.ego.vehicle.length - scenario.ego.vehicle.rear_overhang
    car_x = front + 30.0 + 4.6 / 2
    np.testing.assert_allclose(obs["boxes"][0, :2], [car_x - 4.6 / 2 - 8.0, 0.0], atol=1e-6)  # the cone first
    np.testing.assert_allclose(obs["boxes"][1, :2], [car_x, 0.0], atol=1e-6)
    assert list(obs["box_categories"][:3]) == [6, 0, -1]  # traffic_cone, car, padding
    centrelines = obs["map"][obs["map_types"] == 3]
    assert np.any(np.all(np.abs(centrelines[:, :, 1]) < 1e-6, axis=1))  # the ego lane runs along y = 0
    # sky pixels have depth 0, the road in front of the car is a few metres away
    assert (obs["depth"] == 0).any() and 1.0 < obs["depth"][1, -1, 28] < 20.0
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.step([0.0, 0.0])
    assert env.render().shape == frame.shape  # constant size, as RecordVideo needs


def test_bad_config_names_the_field():
    with pytest.raises(EnvConfigError, match="image_height"):
        DrivingEnv(image_height=0)
    with pytest.raises(EnvConfigError, match="cameras"):
        DrivingEnv(cameras=["CAM_TOP"])
    with pytest.raises(ValueError, match="unknown backend"):
        DrivingEnv(backend="nope")
