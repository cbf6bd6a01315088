"""The PPO example learns: the mean return of its last episodes beats that of its first ones (slow)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ppo_state_features.py"


@pytest.mark.slow
def test_ppo_example_return_rises():
    spec = importlib.util.spec_from_file_location("ppo_state_features", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, returns, _ = module.train(8000, seed=0)
    k = max(3, len(returns) // 5)
    assert returns[-k:].mean() > returns[:k].mean() + 5.0
