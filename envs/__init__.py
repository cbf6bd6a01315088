"""Gymnasium environments: `DrivingEnv`, its config, render backends (raycast; world model via H), vector env."""

from cvd_sim.envs.registration import register_envs

register_envs()
