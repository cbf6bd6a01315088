"""cvd-sim: a closed-loop driving simulator rendered by the CVD-STORM world model."""

__version__ = "0.1.0"
