"""Planners by name (`cvd-sim evaluate --planner NAME`) or by import path `module:Class`."""

from __future__ import annotations

import importlib

PLANNERS: dict[str, str] = {
    "constant_velocity": "cvd_sim.agents.constant_velocity:ConstantVelocityPlanner",
    "idm": "cvd_sim.agents.idm_lane_follower:IDMLaneFollower",
    "pure_pursuit": "cvd_sim.agents.pure_pursuit:PurePursuitPlanner",
    "nuplan_simple": "cvd_sim.agents.nuplan_adapter:simple_nuplan_planner",
}


def load_planner(spec: str):
    """A new planner from a registered name or "module:Class" (a class or factory called with no arguments)."""
    target = PLANNERS.get(spec, spec)
    if ":" not in target:
        raise ValueError(f"unknown planner {spec!r}; known: {', '.join(PLANNERS)} (or module:Class)")
    module, attr = target.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"planner {spec!r}: cannot load {target}: {err}") from None
    planner = factory()
    missing = [m for m in ("reset", "act", "control") if not hasattr(planner, m)]
    if missing:
        raise ValueError(f"planner {spec!r} lacks {', '.join(missing)} (see cvd_sim.agents.protocol.Planner)")
    return planner
