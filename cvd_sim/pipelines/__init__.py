"""Pipelines: the diffusers-style WorldModel that samples, decodes and reconstructs."""

__all__ = ["WorldConditions", "WorldModel"]


def __getattr__(name: str):
    # Lazy: importing cvd_sim.pipelines does not pull in torch/diffusers until a pipeline is used.
    if name == "WorldModel":
        from cvd_sim.pipelines.world_model import WorldModel

        return WorldModel
    if name == "WorldConditions":
        from cvd_sim.pipelines.world_conditions import WorldConditions

        return WorldConditions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
