"""The planner protocol every agent of `cvd-sim evaluate` implements.

    planner.reset(env.unwrapped.scenario_info())        # once per episode, after env.reset
    action = planner.act(observation, info)              # every step; info = the env's latest info

`control` names the env control mode the planner's actions are for ("accel_steer" or "waypoints").
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from cvd_sim.envs.scenario_info import ScenarioInfo


@runtime_checkable
class Planner(Protocol):
    control: str

    def reset(self, scenario_info: ScenarioInfo) -> None: ...

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray: ...
