"""PPO (stable-baselines3) on the world-model env: the policy sees the generated front camera and the ego state.

    .venv/bin/python examples/ppo_worldmodel.py                         # short run with the shipped checkpoint
    .venv/bin/python examples/ppo_worldmodel.py --model FOLDER --timesteps 2048 --envs 4

Every step the CVD-STORM world model generates the camera image (DiT sampling behind the last 3 latent frames,
VAE decode, Gaussian depth); `--envs N` steps N envs as one batched vector env, so the DiT samples all of
them in one forward. The policy is sb3's `MultiInputPolicy` (a CNN on the image + an MLP on the ego features).
Writes the episode returns to `--out/returns.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from cvd_sim.envs.vector import DrivingVectorEnv
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecMonitor


class CameraAndEgo(VecEnv):
    """sb3 VecEnv over the batched `DrivingVectorEnv`: observation {"image": [H, W, 3] uint8 of the first
    camera, "ego": ego features}; actions in [-1, 1] rescaled to the env's (acceleration, steering) box."""

    def __init__(self, venv: DrivingVectorEnv):
        self.venv = venv
        single = venv.single_observation_space
        height, width = single["images"].shape[1:3]
        obs_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), np.uint8),
                "ego": spaces.Box(-np.inf, np.inf, single["ego"].shape, np.float32),
            }
        )
        self.low, self.high = venv.single_action_space.low, venv.single_action_space.high
        super().__init__(venv.num_envs, obs_space, spaces.Box(-1.0, 1.0, self.low.shape, np.float32))
        self._actions = None

    def _obs(self, obs):
        return {"image": obs["images"][:, 0], "ego": obs["ego"].astype(np.float32)}

    def reset(self):
        seeds = [i if s is None else s for i, s in enumerate(self._seeds)]
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        return self._obs(obs)

    def step_async(self, actions):
        self._actions = self.low + (np.clip(actions, -1, 1) + 1) * 0.5 * (self.high - self.low)

    def step_wait(self):
        obs, rewards, terminated, truncated, _ = self.venv.step(self._actions.astype(np.float32))
        done = terminated | truncated
        infos = [{"TimeLimit.truncated": bool(t and not d)} for t, d in zip(truncated, terminated)]
        return self._obs(obs), rewards.astype(np.float32), done, infos

    def close(self):
        self.venv.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(env, attr_name) for env in self.venv.envs]

    def set_attr(self, attr_name, value, indices=None):
        for env in self.venv.envs:
            setattr(env, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [getattr(env, method_name)(*args, **kwargs) for env in self.venv.envs]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


def train(model: str | None, timesteps: int, envs: int = 2, max_steps: int = 40, seed: int = 0, **options):
    """PPO for `timesteps` steps; returns the episode returns seen (list of floats) and the sb3 model."""
    venv = DrivingVectorEnv(
        envs,
        scenario="plain_day_straight",
        backend="worldmodel",
        backend_options={"model": model, **options},
        cameras=["CAM_FRONT"],
        image_height=64,
        image_width=112,
        max_steps=max_steps,
        max_steer=0.15,
    )
    env = VecMonitor(CameraAndEgo(venv))
    n_steps = max(8, min(128, timesteps // envs))
    agent = PPO(
        "MultiInputPolicy", env, n_steps=n_steps, batch_size=n_steps, n_epochs=2, seed=seed, verbose=0
    )
    agent.learn(total_timesteps=timesteps)
    returns = [float(info["r"]) for info in agent.ep_info_buffer]
    env.close()
    return returns, agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="WorldModel folder (default: the shipped checkpoint)")
    parser.add_argument("--timesteps", type=int, default=256)
    parser.add_argument("--envs", type=int, default=2, help="batched envs")
    parser.add_argument("--out", type=Path, default=Path("out/ppo_worldmodel"))
    args = parser.parse_args()
    returns, agent = train(args.model, args.timesteps, args.envs)
    args.out.mkdir(parents=True, exist_ok=True)
    agent.save(args.out / "ppo_worldmodel.zip")
    (args.out / "returns.json").write_text(json.dumps({"returns": returns}), encoding="utf-8")
    print(f"{len(returns)} episodes; wrote {args.out / 'ppo_worldmodel.zip'} and {args.out / 'returns.json'}")


if __name__ == "__main__":
    gym.logger.min_level = 40
    main()
