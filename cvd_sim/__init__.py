"""cvd-sim: a closed-loop driving simulator rendered by the CVD-STORM world model."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `cvd_sim.WorldModel` is loaded on first use, so `import cvd_sim` stays light.
    if name == "WorldModel":
        from cvd_sim.pipelines.world_model import WorldModel

        return WorldModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
