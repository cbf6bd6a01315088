"""A new sensor backend is only a class: a custom one plugs in by "module:Class" and sees batched requests."""

import numpy as np
import pytest
from cvd_sim.envs.backend import RenderBackend, SensorFrame, backend_class
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.envs.vector import DrivingVectorEnv

CALLS: list[list[int]] = []


class StepCountBackend:
    """Images filled with (slot, frames rendered in this episode); depth = the ego's x position."""

    name = "step_count"

    def __init__(self, rig, num_slots: int = 1):
        self.rig, self.num_slots = rig, num_slots
        self.count = [0] * num_slots

    def _frame(self, slot, snap) -> SensorFrame:
        shape = (self.rig.num_views, self.rig.height, self.rig.width)
        images = np.zeros((*shape, 3), np.uint8)
        images[..., 0], images[..., 1] = slot, self.count[slot]
        return SensorFrame(images, np.full(shape, snap.ego.x, np.float32))

    def reset(self, slot, scenario, snapshot, seed):
        self.count[slot] = 0
        return self._frame(slot, snapshot)

    def render(self, requests):
        CALLS.append([slot for slot, _ in requests])
        frames = []
        for slot, snap in requests:
            self.count[slot] += 1
            frames.append(self._frame(slot, snap))
        return frames

    def close(self):
        pass


BACKEND = f"{__name__}:StepCountBackend"


def test_custom_backend_by_import_path_in_single_and_vector_envs():
    assert isinstance(StepCountBackend(DrivingEnv(sensors=False).rig), RenderBackend)
    assert backend_class(BACKEND) is StepCountBackend
    env = DrivingEnv(backend=BACKEND, image_height=8, image_width=16)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step([0.0, 0.0])
    assert obs["images"][0, 0, 0, 1] == 1 and obs["depth"][0, 0, 0] == pytest.approx(env.world.ego.x)
    CALLS.clear()
    vec = DrivingVectorEnv(3, backend=BACKEND, image_height=8, image_width=16, max_steps=2)
    obs, _ = vec.reset(seed=0)
    for _ in range(3):
        obs, *_ = vec.step(np.zeros((3, 2), np.float32))
    # two batched steps of all three slots, then the NEXT_STEP autoreset renders through reset (no render call)
    assert CALLS == [[0, 1, 2], [0, 1, 2]]
    np.testing.assert_array_equal(obs["images"][:, 0, 0, 0, 0], [0, 1, 2])
    np.testing.assert_array_equal(obs["images"][:, 0, 0, 0, 1], [0, 0, 0])  # fresh episodes


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        backend_class("nope")
    with pytest.raises(ValueError, match="cannot load"):
        backend_class("no_such_module:Thing")
