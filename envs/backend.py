"""The sensor backend interface: world state (+ the backend's own history) -> camera images and depth.

A backend serves `num_slots` environments at once; slot i belongs to env i of a vector env (a single env
has one slot). `render` takes requests for several slots in one call, so a backend can batch its work
across environments (the world-model backend batches the DiT there). Backends keep per-slot history
themselves: `reset` starts a slot's episode, every later `render` of that slot is the next time step.

To add a backend: write a class with this interface and name it in `BACKENDS` (or pass "module:Class"
as `EnvConfig.backend`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from cvd_sim.scenarios.schema import Scenario

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.world.world import WorldSnapshot

BACKENDS: dict[str, str] = {
    "raycast": "cvd_sim.envs.raycast_backend:RaycastBackend",
    "worldmodel": "cvd_sim.envs.worldmodel_backend:WorldModelBackend",
}


@dataclass(frozen=True)
class SensorFrame:
    """What the cameras see at one instant: images uint8 [V, H, W, 3]; depth float32 [V, H, W] z-depth in
    metres (0 = unknown / sky)."""

    images: np.ndarray
    depth: np.ndarray


@runtime_checkable
class RenderBackend(Protocol):
    """Turns world snapshots into `SensorFrame`s for `num_slots` environments (see module docstring)."""

    name: str
    rig: CameraRig
    num_slots: int

    def reset(self, slot: int, scenario: Scenario, snapshot: WorldSnapshot, seed: int) -> SensorFrame:
        """Start a new episode in `slot` (forgetting its history) and render its first frame. `seed` is the
        episode's world seed (for a backend's own sampling noise)."""
        ...

    def render(self, requests: Sequence[tuple[int, WorldSnapshot]]) -> list[SensorFrame]:
        """Render the next frame of each (slot, snapshot), at most one request per slot, in request order."""
        ...

    def close(self) -> None: ...


def backend_class(name: str) -> type:
    """The class of a backend named in `BACKENDS` or given as "module:Class"."""
    target = BACKENDS.get(name, name)
    if ":" not in target:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)} (or module:Class)")
    module, attr = target.split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"backend {name!r}: cannot load {target}: {err}") from None


def make_backend(name: str, rig: CameraRig, num_slots: int, options: dict[str, Any] | None = None):
    """Build a backend: `Class(rig=rig, num_slots=num_slots, **options)`."""
    backend = backend_class(name)(rig=rig, num_slots=num_slots, **(options or {}))
    if not isinstance(backend, RenderBackend):
        raise TypeError(
            f"backend {name!r} does not implement RenderBackend (name, rig, num_slots, reset, render)"
        )
    return backend
