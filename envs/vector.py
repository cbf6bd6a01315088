"""`DrivingVectorEnv`: N driving envs in one process sharing one N-slot render backend, so each step renders
all envs with one batched `backend.render` call (the world-model backend batches its DiT there). With
`backend_workers` K > 1 the slots are sharded over K processes (`ShardedBackend`), each batching its share.

Same semantics as `gymnasium.vector.SyncVectorEnv` with `AutoresetMode.NEXT_STEP`: the step after an env's
episode ends resets that env (its action is ignored, reward 0, not terminated/truncated).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, ClassVar

import numpy as np
from cvd_sim.envs.backend import make_backend
from cvd_sim.envs.config import EnvConfig
from cvd_sim.envs.driving_env import DrivingEnv, _as_config, camera_rig
from cvd_sim.envs.sharded_backend import ShardedBackend
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate


class DrivingVectorEnv(VectorEnv):
    """`num_envs` `DrivingEnv`s built from one config. `copy`: return copies of the batched observation."""

    metadata: ClassVar[dict] = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        config: EnvConfig | dict | None = None,
        render_mode: str | None = None,
        copy: bool = True,
        **fields,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        cfg = _as_config(config, fields)
        self.num_envs = int(num_envs)
        self.copy = copy
        self.render_mode = render_mode
        rig = camera_rig(cfg)
        self.backend = None
        if cfg.sensors and cfg.backend_workers > 1:
            workers = min(cfg.backend_workers, self.num_envs)
            self.backend = ShardedBackend(cfg.backend, rig, self.num_envs, cfg.backend_options, workers)
        elif cfg.sensors:
            self.backend = make_backend(cfg.backend, rig, self.num_envs, cfg.backend_options)
        self.envs = [
            DrivingEnv(cfg, render_mode=render_mode, shared_backend=self.backend, slot=i)
            for i in range(self.num_envs)
        ]
        self.config = cfg
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._observations = create_empty_array(self.single_observation_space, self.num_envs)
        self._obs = [None] * self.num_envs
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminations = np.zeros(self.num_envs, np.bool_)
        self._truncations = np.zeros(self.num_envs, np.bool_)
        self._autoreset = np.zeros(self.num_envs, np.bool_)

    def _batched(self):
        self._observations = concatenate(self.single_observation_space, self._obs, self._observations)
        return deepcopy(self._observations) if self.copy else self._observations

    def _reset_envs(self, indices: list[int], seeds: list, options: dict | None) -> dict[str, Any]:
        snaps = [self.envs[i].prepare_reset(seed=seeds[i], options=options) for i in indices]
        if self.backend is not None:
            frames = [
                self.backend.reset(i, self.envs[i].scenario, s, self.envs[i].world.seed)
                for i, s in zip(indices, snaps)
            ]
        else:
            frames = [None] * len(indices)
        infos: dict[str, Any] = {}
        for i, frame in zip(indices, frames):
            self._obs[i], info = self.envs[i].finish_reset(frame)
            infos = self._add_info(infos, info, i)
        return infos

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed list must have num_envs={self.num_envs} entries, got {len(seeds)}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, np.bool_)
        indices = [int(i) for i in np.flatnonzero(mask)]
        self._terminations[indices] = self._truncations[indices] = self._autoreset[indices] = False
        infos = self._reset_envs(indices, seeds, options)
        return self._batched(), infos

    def step(self, actions):
        actions = list(iterate(self.action_space, actions))
        resets = [i for i in range(self.num_envs) if self._autoreset[i]]
        stepping = [i for i in range(self.num_envs) if not self._autoreset[i]]
        snaps = {i: self.envs[i].advance(actions[i]) for i in stepping}
        frames = (
            dict(zip(stepping, self.backend.render([(i, snaps[i]) for i in stepping])))
            if self.backend is not None and stepping
            else dict.fromkeys(stepping)
        )
        infos = self._reset_envs(resets, [None] * self.num_envs, None) if resets else {}
        for i in resets:
            self._rewards[i], self._terminations[i], self._truncations[i] = 0.0, False, False
        for i in stepping:
            self._obs[i], self._rewards[i], self._terminations[i], self._truncations[i], info = self.envs[
                i
            ].finish_step(frames[i])
            infos = self._add_info(infos, info, i)
        self._autoreset = self._terminations | self._truncations
        return (
            self._batched(),
            self._rewards.copy(),
            self._terminations.copy(),
            self._truncations.copy(),
            infos,
        )

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs) -> None:
        if self.backend is not None:
            self.backend.close()
        for env in self.envs:
            env.close()
