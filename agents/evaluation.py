"""Closed-loop evaluation of a planner over scenarios: one episode per scenario, scores, optional videos.

Scores per episode come from the World (`EpisodeScores`): nuPlan closed-loop score, NAVSIM PDMS, route
completion, DriveArena's arena score and their parts. The aggregate is the mean over scenarios.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from cvd_sim.agents.registry import load_planner
from cvd_sim.envs.config import EnvConfig
from cvd_sim.envs.driving_env import DrivingEnv
from cvd_sim.envs.reward import episode_end

from cvd_sim.viz.video import write_video

HEADLINE = ("nuplan_score", "pdms", "route_completion", "arena_score")


@dataclass
class EpisodeResult:
    scenario: str  # the reference it was given (file, library name or builder:NAME)
    name: str  # the scenario's own name
    planner: str
    steps: int
    end: str  # "collision", "offroad", "goal" or "horizon"
    episode_return: float
    scores: dict
    video: str | None = None


def run_episode(
    planner_spec: str, scenario: str, config: EnvConfig, video_dir: Path | None = None, seed: int = 0
) -> EpisodeResult:
    """One closed-loop episode of a planner (name or module:Class) in one scenario."""
    planner = load_planner(planner_spec)
    cfg = config.model_copy(update={"scenario": scenario, "control": planner.control})
    env = DrivingEnv(cfg, render_mode="rgb_array" if video_dir is not None else None)
    try:
        obs, info = env.reset(seed=seed)
        planner.reset(env.scenario_info())
        frames = [env.render()] if video_dir is not None else []
        total = 0.0
        while True:
            obs, reward, terminated, truncated, info = env.step(planner.act(obs, info))
            total += reward
            if video_dir is not None:
                frames.append(env.render())
            if terminated or truncated:
                break
        end = episode_end(info)
        video = None
        if video_dir is not None:
            path = Path(video_dir) / f"{_slug(env.scenario.name)}__{_slug(planner_spec)}.mp4"
            video = str(write_video(path, frames, fps=1.0 / env.world.dt))
        return EpisodeResult(
            scenario,
            env.scenario.name,
            planner_spec,
            int(info["step"]),
            end,
            float(total),
            info["episode_scores"],
            video,
        )
    finally:
        env.close()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _run(args) -> EpisodeResult:
    return run_episode(*args)


def evaluate(
    planner_spec: str,
    scenarios: list[str],
    config: EnvConfig,
    video_dir: Path | None = None,
    workers: int = 1,
    seed: int = 0,
    progress=None,
) -> list[EpisodeResult]:
    """Run every scenario (in `workers` processes when > 1); results in scenario order.
    progress: optional callable called once per finished episode."""
    jobs = [(planner_spec, sc, config, video_dir, seed) for sc in scenarios]
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(_run(job))
            if progress:
                progress()
        return results
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run, job) for job in jobs]
        results = []
        for future in futures:
            results.append(future.result())
            if progress:
                progress()
        return results


def aggregate(results: list[EpisodeResult]) -> dict[str, float]:
    """Mean of every score over the episodes, plus the number of episodes and of collision ends."""
    keys = list(results[0].scores)
    out = {k: float(np.mean([r.scores[k] for r in results])) for k in keys}
    out["episodes"] = len(results)
    out["collision_ends"] = sum(r.end == "collision" for r in results)
    return out


def results_json(results: list[EpisodeResult]) -> dict:
    return {"episodes": [asdict(r) for r in results], "aggregate": aggregate(results)}
