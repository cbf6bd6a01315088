"""Per-step reward and episode end, from the world's newest `StepRecord`.

reward = w.progress * (route progress this step, m)
       - w.collision * (new ego collisions this step)
       - w.offroad * [offroad distance > tolerance]
       - w.wrong_way * (metres driven against the lane direction this step)
       - w.discomfort * [a nuPlan comfort bound broken at this step]
       + w.goal * [route end reached this step]
terminated on a collision, going off-road (beyond `offroad_tolerance`) or reaching the route end.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvd_sim.world.scores import StepRecord, comfort_flags


@dataclass(frozen=True)
class StepOutcome:
    reward: float
    collided: bool
    offroad: bool
    goal_reached: bool
    wrong_way: float  # m driven against the lane this step
    uncomfortable: bool
    progress: float  # m along the route this step

    @property
    def terminated(self) -> bool:
        return self.collided or self.offroad or self.goal_reached


def step_outcome(
    records: list[StepRecord], route_length: float, weights, offroad_tolerance: float, goal_tolerance: float
) -> StepOutcome:
    """Reward and flags of the last step in `records` (the world's records so far, newest last)."""
    now = records[-1]
    before = records[-2].route_progress if len(records) > 1 else 0.0
    progress = now.route_progress - before
    collided = len(now.collisions) > 0
    offroad = now.offroad_distance > offroad_tolerance
    wrong_way = max(0.0, -now.lane_progress)
    uncomfortable = len(records) > 1 and not bool(comfort_flags(records[-2:])[-1])
    goal = now.route_progress >= route_length - goal_tolerance
    reward = (
        weights.progress * progress
        - weights.collision * len(now.collisions)
        - weights.offroad * float(offroad)
        - weights.wrong_way * wrong_way
        - weights.discomfort * float(uncomfortable)
        + weights.goal * float(goal)
    )
    return StepOutcome(float(reward), collided, offroad, goal, wrong_way, uncomfortable, float(progress))


def episode_end(info: dict) -> str:
    """How an episode ended, from the env's last `info`: "collision", "offroad", "goal" or "horizon"."""
    if info["collided"]:
        return "collision"
    if info["offroad"]:
        return "offroad"
    return "goal" if info["goal_reached"] else "horizon"
