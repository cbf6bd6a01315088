"""Closed-loop fidelity of the world model: one planner drives one world; at every step the same snapshot is
rendered by the raycast ground truth and by each world-model setting, and the generated views and Gaussian
depth are scored against it (PSNR, SSIM, AbsRel, delta < 1.25), with the drift (least-squares slope per step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from cvd_sim.envs.backend import SensorFrame
from cvd_sim.envs.driving_env import DrivingEnv
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

METRICS = ("psnr", "ssim", "abs_rel", "delta1")


def image_scores(generated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of uint8 views [V, H, W, 3] against the truth (data range 1, mean over views)."""
    gen = torch.from_numpy(generated).permute(0, 3, 1, 2).double() / 255.0
    ref = torch.from_numpy(truth).permute(0, 3, 1, 2).double() / 255.0
    psnr = peak_signal_noise_ratio(gen, ref, data_range=1.0, reduction="none", dim=(1, 2, 3)).mean()
    ssim = structural_similarity_index_measure(gen, ref, data_range=1.0)
    return float(psnr), float(ssim)


def depth_scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """AbsRel = mean |p - t| / t and delta1 = share of max(p/t, t/p) < 1.25, over pixels where both depths are
    known (> 0). Depth [V, H, W] metres. NaN when no pixel is valid."""
    valid = (truth > 0) & (predicted > 0)
    if not valid.any():
        return float("nan"), float("nan")
    p, t = predicted[valid].astype(np.float64), truth[valid].astype(np.float64)
    return float(np.mean(np.abs(p - t) / t)), float(np.mean(np.maximum(p / t, t / p) < 1.25))


def drift_slope(values: list[float]) -> float:
    """Least-squares slope of a metric per step (NaN-free values; 0 for fewer than two)."""
    y = np.asarray(values, np.float64)
    keep = np.isfinite(y)
    if keep.sum() < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(y))[keep], y[keep], 1)[0])


@dataclass
class FidelityTrace:
    """Per-step scores of one setting ({metric: [steps]}) and the frames kept for a video."""

    per_step: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def add(self, generated: SensorFrame, truth: SensorFrame) -> None:
        for name, value in zip(
            METRICS,
            (*image_scores(generated.images, truth.images), *depth_scores(generated.depth, truth.depth)),
        ):
            self.per_step[name].append(value)

    def summary(self) -> dict[str, float]:
        """Mean of each metric over the horizon and its drift slope per step."""
        out = {}
        for name, values in self.per_step.items():
            finite = [v for v in values if np.isfinite(v)]
            out[name] = float(np.mean(finite)) if finite else float("nan")
            out[name + "_slope"] = drift_slope(values)
        return out


def run_fidelity(
    env: DrivingEnv,
    planner,
    backends: dict[str, Callable],
    steps: int,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> dict[str, FidelityTrace]:
    """Drive `env` (whose backend is the ground truth) with `planner` for up to `steps` steps; each
    `backends[name](rig)` builds a one-slot backend that renders the same snapshots. -> {name: trace}."""
    made = {name: factory(env.rig) for name, factory in backends.items()}
    traces = {name: FidelityTrace() for name in made}
    obs, info = env.reset(seed=seed)
    planner.reset(env.scenario_info())
    for backend in made.values():
        backend.reset(0, env.scenario, env._snap, env.world.seed)
    for _ in range(steps):
        snap = env.advance(planner.act(obs, info))
        truth = env.backend.render([(env.slot, snap)])[0]
        obs, _, terminated, truncated, info = env.finish_step(truth)
        for name, backend in made.items():
            traces[name].add(backend.render([(0, snap)])[0], truth)
        if progress is not None:
            progress()
        if terminated or truncated:
            break
    for backend in made.values():
        backend.close()
    return traces


def plot_drift(traces: dict[str, FidelityTrace], path) -> None:
    """PSNR and AbsRel per step of every setting, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, trace in traces.items():
        for ax, metric in zip(axes, ("psnr", "abs_rel")):
            values = trace.per_step[metric]
            ax.plot(
                np.arange(1, len(values) + 1), values, label=f"{name} (slope {drift_slope(values):+.3f}/step)"
            )
    for ax, label in zip(axes, ("PSNR (dB)", "depth AbsRel")):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
