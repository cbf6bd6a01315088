"""Registers the cvd_sim Gymnasium environments (called through the `gymnasium.envs` entry point)."""


def register_envs() -> None:
    """Register `cvd_sim/Raycast-v0` and `cvd_sim/WorldModel-v0` once envs exist."""
