"""Registers the cvd_sim Gymnasium environments.

Gymnasium 1.x dropped the 0.26-0.29 entry-point plugin loader, so the `gymnasium.envs` entry point in
pyproject is no longer called by `gym.make`. Use the module-prefixed id, which makes Gymnasium import this
package first (no import needed in user code):

    gym.make("cvd_sim.envs:cvd_sim/Raycast-v0")

or `import cvd_sim.envs` once, after which `gym.make("cvd_sim/Raycast-v0")` works.
"""

from gymnasium.envs.registration import register, registry

ENV_IDS = {
    "cvd_sim/Raycast-v0": {"backend": "raycast"},
    "cvd_sim/WorldModel-v0": {"backend": "worldmodel"},
}


def register_envs() -> None:
    """Register every id in `ENV_IDS` once (idempotent); vectorised with the native batched vector env."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point="cvd_sim.envs.driving_env:DrivingEnv",
                vector_entry_point="cvd_sim.envs.vector:DrivingVectorEnv",
                kwargs=dict(kwargs),
            )
