"""Constant-velocity baseline: keeps the current speed and drives straight on (zero acceleration and steering)."""

from __future__ import annotations

from typing import Any

import numpy as np
from cvd_sim.envs.scenario_info import ScenarioInfo


class ConstantVelocityPlanner:
    control = "accel_steer"

    def reset(self, scenario_info: ScenarioInfo) -> None:
        """Nothing to remember: the action never depends on the scenario."""

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return np.zeros(2, np.float32)
