"""PPO (stable-baselines3) on the raycast-backed driving env, from state features only.

    .venv/bin/python examples/ppo_state_features.py                      # short run (8000 steps, ~2 min on 2 CPU cores)
    .venv/bin/python examples/ppo_state_features.py --timesteps 200000   # longer

The policy sees the `ego` features (speed, acceleration, yaw rate, steering, route command, offset and
heading error to the route, speed limit, distance left), normalised by running statistics; sensors are
switched off so a step costs only the world simulation. Actions are (acceleration, steering within +-0.15 rad)
rescaled to [-1, 1]. Writes the reward curve
(episode return against timesteps) to `--out/reward_curve.png` and the returns to `--out/returns.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from cvd_sim.envs.config import RewardWeights
from cvd_sim.envs.driving_env import DrivingEnv
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor


def make_env(scenario: str, max_steps: int, seed: int) -> gym.Env:
    # progress dominates so that driving on (not stopping) is what pays; leaving the road still costs the episode
    reward = RewardWeights(
        progress=1.0, collision=20.0, offroad=20.0, wrong_way=1.0, discomfort=0.1, goal=10.0
    )
    env = DrivingEnv(
        scenario=scenario,
        sensors=False,
        control="accel_steer",
        max_steps=max_steps,
        seed=seed,
        reward=reward,
        max_steer=0.15,  # rad; a narrower steering range than the vehicle's 0.6 makes random exploration stay on the road longer
    )
    env = gym.wrappers.FilterObservation(env, ["ego"])
    env = gym.wrappers.FlattenObservation(env)
    env = gym.wrappers.NormalizeObservation(env)
    env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
    return Monitor(env)


def train(timesteps: int, scenario: str = "plain_day_straight", max_steps: int = 100, seed: int = 0):
    """Train PPO; returns (episode end timesteps [E], episode returns [E], the model)."""
    env = make_env(scenario, max_steps, seed)
    model = PPO(
        "MlpPolicy", env, n_steps=512, batch_size=128, learning_rate=3e-4, gamma=0.98, seed=seed, verbose=0
    )
    model.learn(total_timesteps=timesteps)
    lengths = np.array(env.get_episode_lengths())
    returns = np.array(env.get_episode_rewards())
    return np.cumsum(lengths), returns, model


def plot_curve(steps: np.ndarray, returns: np.ndarray, path: Path, window: int = 10) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, returns, ".", alpha=0.4, label="episode return")
    if len(returns) >= window:
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, "-", label=f"mean of {window}")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("return")
    ax.set_title("PPO on cvd_sim raycast env (state features)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8_000)
    parser.add_argument("--scenario", default="plain_day_straight", help="library name, file or builder:NAME")
    parser.add_argument("--max-steps", type=int, default=100, help="episode length cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/ppo"))
    args = parser.parse_args(argv)
    steps, returns, model = train(args.timesteps, args.scenario, args.max_steps, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "ppo_state_features")
    curve = plot_curve(steps, returns, args.out / "reward_curve.png")
    (args.out / "returns.json").write_text(
        json.dumps({"timesteps": steps.tolist(), "returns": returns.tolist()})
    )
    k = max(1, len(returns) // 5)
    print(
        f"{len(returns)} episodes; mean return of the first {k}: {returns[:k].mean():.2f}, "
        f"last {k}: {returns[-k:].mean():.2f}"
    )
    print(f"wrote {curve}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
