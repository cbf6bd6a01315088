"""Vector envs: the native batched DrivingVectorEnv equals single envs (and SyncVectorEnv) step for step,
renders all envs in one backend call, equals them when its slots are sharded over processes, and the env
also runs under AsyncVectorEnv."""

import gymnasium as gym
import numpy as np
import pytest
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.envs.sharded_backend import ShardedBackend
from cvd_sim.envs.vector import DrivingVectorEnv

CFG = {"image_height": 16, "image_width": 32, "max_steps": 6, "scenario": "builder:stalled_vehicle"}


def _actions(n_envs, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([-3.0, -0.2], [2.0, 0.2], size=(steps, n_envs, 2)).astype(np.float32)


def _singles(actions, seed):
    """Three single envs stepped by hand with NEXT_STEP autoreset semantics."""
    n = actions.shape[1]
    envs = [DrivingEnv(**CFG) for _ in range(n)]
    obs = [envs[i].reset(seed=seed + i)[0] for i in range(n)]
    done = [False] * n
    history = [(obs, [0.0] * n, [False] * n, [False] * n)]
    for a in actions:
        obs, rew, term, trunc = [], [], [], []
        for i, env in enumerate(envs):
            if done[i]:
                o, _ = env.reset()
                r, te, tr = 0.0, False, False
            else:
                o, r, te, tr, _ = env.step(a[i])
            obs.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
            done[i] = te or tr
        history.append((obs, rew, term, trunc))
    return history


def _compare(vec, history, actions, seed):
    obs, _ = vec.reset(seed=seed)
    steps = [(obs, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool))]
    for a in actions:
        obs, rew, term, trunc, _ = vec.step(a)
        steps.append((obs, rew, term, trunc))
    for (v_obs, v_rew, v_term, v_trunc), (s_obs, s_rew, s_term, s_trunc) in zip(steps, history):
        np.testing.assert_array_equal(v_rew, s_rew)
        np.testing.assert_array_equal(v_term, s_term)
        np.testing.assert_array_equal(v_trunc, s_trunc)
        for key in v_obs:
            np.testing.assert_array_equal(v_obs[key], np.stack([o[key] for o in s_obs]))


def test_native_and_sync_vector_env_of_three_equal_three_single_envs():
    actions = _actions(3, 14)
    history = _singles(actions, seed=5)
    assert any(any(t) for _, _, _, t in history)  # episodes end and auto-reset inside the window
    native = DrivingVectorEnv(3, **CFG)
    calls = []
    render = native.backend.render
    native.backend.render = lambda requests: calls.append(len(requests)) or render(requests)
    _compare(native, history, actions, seed=5)
    assert calls and all(c <= 3 for c in calls) and max(calls) == 3  # one batched call per step
    _compare(
        gym.vector.SyncVectorEnv([lambda: DrivingEnv(**CFG) for _ in range(3)]), history, actions, seed=5
    )
    sharded = DrivingVectorEnv(3, backend_workers=2, **CFG)  # slots 0, 2 in one process, slot 1 in another
    try:
        assert isinstance(sharded.backend, ShardedBackend)
        _compare(sharded, history, actions, seed=5)
    finally:
        sharded.close()


def test_sharded_backend_reports_a_worker_error_with_the_bad_field():
    with pytest.raises(RuntimeError, match="backend worker 0 failed") as err:
        DrivingVectorEnv(2, backend_workers=2, backend_options={"no_such_option": 1}, **CFG)
    assert "no_such_option" in str(err.value)


def test_make_vec_uses_the_native_vector_env_and_async_runs():
    import cvd_sim.envs  # noqa: F401

    vec = gym.make_vec("cvd_sim/Raycast-v0", num_envs=2, **CFG)
    assert isinstance(vec, DrivingVectorEnv)
    actions = _actions(2, 3)
    async_env = gym.vector.AsyncVectorEnv([lambda: DrivingEnv(**CFG) for _ in range(2)])
    try:
        a_obs, _ = async_env.reset(seed=1)
        v_obs, _ = vec.reset(seed=1)
        for a in actions:
            a_obs, a_rew, *_ = async_env.step(a)
            v_obs, v_rew, *_ = vec.step(a)
            np.testing.assert_array_equal(a_rew, v_rew)
            np.testing.assert_array_equal(a_obs["images"], v_obs["images"])
    finally:
        async_env.close()
        vec.close()
