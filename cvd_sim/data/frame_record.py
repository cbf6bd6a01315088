"""`FrameRecord`: everything SynthDrive stores for one time step of one scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvd_sim.sensors.renderer import CameraFrame


@dataclass
class FrameRecord:
    """time: seconds since the scene start; ego_to_world [4, 4]; boxes [N, 7] world; categories [N] int;
    instance_ids [N] int (>= 0, stable over the scene); speeds [N] m/s; cameras: the V rendered views;
    lidar [P, 5] sensor frame (x, y, z, intensity, ring); lidar_instance [P] int (-1 = static)."""

    time: float
    ego_to_world: np.ndarray
    boxes: np.ndarray
    categories: np.ndarray
    instance_ids: np.ndarray
    speeds: np.ndarray
    cameras: CameraFrame
    lidar: np.ndarray
    lidar_instance: np.ndarray
