"""`ShardedBackend`: a vector env's slots split over worker processes, each running its own backend.

On a CPU the world-model backend gets almost nothing from a second thread (its rasterizer and its small
DiT are bound by per-op overhead, not arithmetic), while two processes of one thread each run side by
side at full speed. So a vector env can shard its N slots over K processes: worker k owns the slots
i with i % K == k, builds `make_backend(name, rig, its slot count, options)` with `cores // K` torch
threads, and batches its share of every `render` call. All workers render at once; the results come back
in request order. Each slot keeps its own seeded noise, so a slot's frames do not depend on the sharding
(up to float rounding of the batched DiT).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Sequence
from typing import Any

from cvd_sim.envs.backend import SensorFrame, make_backend

from cvd_sim.geometry.camera import CameraRig
from cvd_sim.world.world import WorldSnapshot


def _serve(conn, name: str, rig: CameraRig, num_slots: int, options: dict, threads: int) -> None:
    """Worker loop: build the backend, then answer ("reset", args) / ("render", requests) / ("close",)."""
    import torch

    torch.set_num_threads(threads)
    try:
        backend = make_backend(name, rig, num_slots, options)
        conn.send(("ok", None))
    except Exception:  # report the build error to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        command, payload = conn.recv()
        if command == "close":
            backend.close()
            conn.send(("ok", None))
            return
        try:
            result = backend.reset(*payload) if command == "reset" else backend.render(payload)
            conn.send(("ok", result))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class ShardedBackend:
    """A `RenderBackend` for `num_slots` slots served by `workers` processes (see module docstring)."""

    def __init__(
        self, name: str, rig: CameraRig, num_slots: int, options: dict[str, Any] | None, workers: int
    ):
        if not 1 <= workers <= num_slots:
            raise ValueError(f"backend_workers must be in [1, num_envs={num_slots}], got {workers}")
        self.rig, self.num_slots, self.workers = rig, num_slots, workers
        self.name = f"{name} x{workers} processes"
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = mp.get_context("spawn")  # a fork would copy torch's thread pools mid-use
        self._conns, self._procs = [], []
        for k in range(workers):
            parent, child = context.Pipe()
            count = len(range(k, num_slots, workers))
            proc = context.Process(
                target=_serve, args=(child, name, rig, count, dict(options or {}), threads), daemon=True
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            for k in range(workers):
                self._receive(k)
        except RuntimeError:
            self.close()
            raise

    def _receive(self, worker: int):
        try:
            status, result = self._conns[worker].recv()
        except (OSError, EOFError):
            self._procs[worker].join(timeout=5)
            raise RuntimeError(
                f"backend worker {worker} exited without a reply (exit code {self._procs[worker].exitcode}); "
                "workers are spawned, so a script must build the vector env under `if __name__ == '__main__':`"
            ) from None
        if status == "error":
            raise RuntimeError(f"backend worker {worker} failed:\n{result}")
        return result

    def reset(self, slot: int, scenario, snapshot: WorldSnapshot, seed: int) -> SensorFrame:
        worker, local = slot % self.workers, slot // self.workers
        self._conns[worker].send(("reset", (local, scenario, snapshot, seed)))
        return self._receive(worker)

    def render(self, requests: Sequence[tuple[int, WorldSnapshot]]) -> list[SensorFrame]:
        shares: dict[int, list[int]] = {}
        for position, (slot, _) in enumerate(requests):
            shares.setdefault(slot % self.workers, []).append(position)
        for worker, positions in shares.items():
            local = [(requests[p][0] // self.workers, requests[p][1]) for p in positions]
            self._conns[worker].send(("render", local))
        frames: list[SensorFrame | None] = [None] * len(requests)
        failure = None
        for worker, positions in shares.items():  # receive every share before raising: pipes stay in step
            try:
                for position, frame in zip(positions, self._receive(worker)):
                    frames[position] = frame
            except RuntimeError as err:
                failure = failure or err
        if failure is not None:
            raise failure
        return frames

    def close(self) -> None:
        for conn, proc in zip(self._conns, self._procs):
            if proc.is_alive():
                try:
                    conn.send(("close", None))
                    conn.recv()
                except (OSError, EOFError):  # the worker is gone already
                    pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        self._conns, self._procs = [], []
