"""The PPO example runs (short) against the world-model backend with a batched vector env."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from cvd_sim.envs.worldmodel_random import save_random_world_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ppo_worldmodel.py"


@pytest.mark.slow
def test_ppo_example_trains_on_the_world_model_env(tmp_path):
    spec = importlib.util.spec_from_file_location("ppo_worldmodel", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    folder = save_random_world_model(tmp_path / "wm", micro=True)
    returns, agent = example.train(str(folder), timesteps=32, envs=2, max_steps=6, num_steps=1)
    assert agent.num_timesteps >= 32
    assert len(returns) >= 4  # 6-step episodes in 2 envs over >= 32 steps
