"""Closed-loop metrics per step and aggregate episode scores (nuPlan, NAVSIM PDMS, route completion, arena).

The World fills one `StepRecord` per simulation step; `episode_scores` turns the list into the scores.
Sources of every threshold are nuPlan's closed-loop metric defaults (nuplan-devkit,
`nuplan/planning/script/config/common/simulation_metric/`) and NAVSIM's PDM score (`navsim/planning/
simulation/planner/pdm_planner/scoring/pdm_scorer.py`), summarised in REFERENCES.md "Closed-loop metrics".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.world.collisions import Collision
from cvd_sim.world.ttc import TTC_BOUND

DRIVABLE_AREA_TOLERANCE = 0.3  # m, nuPlan drivable_area_compliance max_violation_threshold
DIRECTION_WINDOW = 1.0  # s, nuPlan driving_direction_compliance time_horizon
DIRECTION_COMPLIANT = 2.0  # m of wrong-way progress within the window: full score below
DIRECTION_VIOLATION = 6.0  # m: score 0 at or above, 0.5 in between
MAKING_PROGRESS_RATIO = 0.2  # nuPlan ego_is_making_progress: ego / expert progress >= 0.2
MIN_EXPERT_PROGRESS = 5.0  # m; below this the progress ratio is 1 (NAVSIM progress_distance_threshold)
MAX_OVERSPEED = 2.23  # m/s, nuPlan speed_limit_compliance max_overspeed_value_threshold

# nuPlan ego_is_comfortable bounds
COMFORT_BOUNDS = {
    "min_lon_accel": -4.05,  # m/s^2
    "max_lon_accel": 2.40,  # m/s^2
    "max_abs_lat_accel": 4.89,  # m/s^2
    "max_abs_yaw_rate": 0.95,  # rad/s
    "max_abs_yaw_accel": 1.93,  # rad/s^2
    "max_abs_lon_jerk": 4.13,  # m/s^3
    "max_abs_mag_jerk": 8.37,  # m/s^3
}


@dataclass
class StepRecord:
    """Facts about the ego at one step (after the step). Distances in metres, speeds m/s, times s."""

    time: float
    speed: float
    accel: float  # longitudinal
    yaw_rate: float
    offroad_distance: float  # max distance of an ego corner outside the drivable area (0 inside)
    lane_progress: float  # signed progress along the direction of the lane under the ego during the step
    route_progress: float  # cumulative progress along the route since the start
    expert_progress: float  # cumulative progress of the reference (expert) run at this time
    ttc: float  # seconds, inf when nothing is projected to collide within the horizon
    speed_limit: float | None
    collisions: list[Collision] = field(default_factory=list)  # collisions that started at this step


@dataclass
class EpisodeScores:
    """Aggregate scores of an episode, each in [0, 1] (see `episode_scores` for the formulas)."""

    no_at_fault_collisions: float
    drivable_area_compliance: float
    driving_direction_compliance: float
    making_progress: float
    ego_progress: float
    ttc_within_bound: float
    speed_limit_compliance: float
    comfort: float
    nuplan_score: float
    pdms: float
    route_completion: float
    arena_score: float
    num_collisions: int
    num_at_fault_collisions: int

    def as_dict(self) -> dict:
        return asdict(self)


def collision_score(collisions: list[Collision]) -> float:
    """nuPlan no_ego_at_fault_collisions: 0 with an at-fault collision with a vehicle or vulnerable road
    user; with static objects only, 1 - 0.5 per at-fault collision, floored at 0 (so 1, 0.5, 0)."""
    at_fault = [c for c in collisions if c.at_fault]
    if any(CATEGORIES[c.category].name not in ("traffic_cone", "barrier") for c in at_fault):
        return 0.0
    return max(0.0, 1.0 - 0.5 * len(at_fault))


def progress_ratio(ego_progress: float, expert_progress: float) -> float:
    """nuPlan/NAVSIM ego progress: ego / expert progress clipped to [0, 1]; 1 when the expert barely moves."""
    if expert_progress < MIN_EXPERT_PROGRESS:
        return 1.0
    return float(np.clip(ego_progress / expert_progress, 0.0, 1.0))


def comfort_flags(records: list[StepRecord]) -> np.ndarray:
    """[T] bool, True where every nuPlan comfort bound holds. Derivatives are backward differences."""
    t = np.array([r.time for r in records])
    lon = np.array([r.accel for r in records])
    yaw_rate = np.array([r.yaw_rate for r in records])
    lat = np.array([r.speed for r in records]) * yaw_rate
    dt = np.diff(t, prepend=t[0] - 1.0)
    dt[0] = np.inf  # no derivative at the first step
    lon_jerk = np.diff(lon, prepend=lon[0]) / dt
    lat_jerk = np.diff(lat, prepend=lat[0]) / dt
    yaw_accel = np.diff(yaw_rate, prepend=yaw_rate[0]) / dt
    b = COMFORT_BOUNDS
    return (
        (lon >= b["min_lon_accel"])
        & (lon <= b["max_lon_accel"])
        & (np.abs(lat) <= b["max_abs_lat_accel"])
        & (np.abs(yaw_rate) <= b["max_abs_yaw_rate"])
        & (np.abs(yaw_accel) <= b["max_abs_yaw_accel"])
        & (np.abs(lon_jerk) <= b["max_abs_lon_jerk"])
        & (np.hypot(lon_jerk, lat_jerk) <= b["max_abs_mag_jerk"])
    )


def worst_wrong_way_progress(records: list[StepRecord]) -> float:
    """Largest distance (m, >= 0) driven against the lane direction within any DIRECTION_WINDOW seconds."""
    t = np.array([r.time for r in records])
    progress = np.cumsum([r.lane_progress for r in records])
    start = np.concatenate([[0.0], progress])
    # window ending at step i starts after the last step earlier than t_i - window
    first = np.searchsorted(t, t - DIRECTION_WINDOW + 1e-9, side="left")
    window_progress = progress - start[first]
    return float(max(0.0, -window_progress.min()))


def direction_score(wrong_way: float) -> float:
    """nuPlan driving_direction_compliance: 1 below 2 m, 0.5 below 6 m, else 0."""
    if wrong_way < DIRECTION_COMPLIANT:
        return 1.0
    return 0.5 if wrong_way < DIRECTION_VIOLATION else 0.0


def speed_limit_score(records: list[StepRecord]) -> float:
    """nuPlan speed_limit_compliance: max(0, 1 - integral(overspeed dt) / (2.23 m/s * duration))."""
    t = np.array([r.time for r in records])
    dt = np.diff(t, prepend=t[0] - (t[1] - t[0] if len(t) > 1 else 1.0))
    over = np.array(
        [max(0.0, r.speed - r.speed_limit) if r.speed_limit is not None else 0.0 for r in records]
    )
    duration = float(dt.sum())
    return float(max(0.0, 1.0 - (over * dt).sum() / (MAX_OVERSPEED * duration)))


def pdms(nc: float, dac: float, ttc: float, ep: float, comfort: float) -> float:
    """NAVSIM PDM score: NC * DAC * (5 TTC + 5 EP + 2 C) / 12 (Dauner et al. 2024, NAVSIM v1)."""
    return nc * dac * (5.0 * ttc + 5.0 * ep + 2.0 * comfort) / 12.0


def nuplan_score(
    collisions: float,
    dac: float,
    progress_ok: float,
    direction: float,
    progress: float,
    ttc: float,
    speed_limit: float,
    comfort: float,
) -> float:
    """nuPlan closed-loop score (CLS): product of the multipliers (no at-fault collisions, drivable area,
    making progress, driving direction) x weighted mean of progress 5, TTC 5, speed limit 4, comfort 2."""
    weighted = (5.0 * progress + 5.0 * ttc + 4.0 * speed_limit + 2.0 * comfort) / 16.0
    return collisions * dac * progress_ok * direction * weighted


def episode_scores(records: list[StepRecord], route_length: float) -> EpisodeScores:
    """Scores of a whole episode.

    route completion = clip(route progress / route length, 0, 1);
    arena score (DriveArena's driving score) = mean over steps of the per-step PDMS x route completion, where
    the step PDMS uses that step's collisions, drivable-area check, TTC and comfort and the progress ratio so far.
    """
    if not records:
        raise ValueError("episode_scores needs at least one step")
    all_collisions = [c for r in records for c in r.collisions]
    nc = collision_score(all_collisions)
    dac = 0.0 if any(r.offroad_distance > DRIVABLE_AREA_TOLERANCE for r in records) else 1.0
    direction = direction_score(worst_wrong_way_progress(records))
    last = records[-1]
    ep = progress_ratio(last.route_progress, last.expert_progress)
    making_progress = 1.0 if ep >= MAKING_PROGRESS_RATIO else 0.0
    ttc_ok = 1.0 if all(r.ttc >= TTC_BOUND for r in records) else 0.0
    comfort_ok = comfort_flags(records)
    comfort = 1.0 if comfort_ok.all() else 0.0
    speed = speed_limit_score(records)
    rc = float(np.clip(last.route_progress / route_length, 0.0, 1.0)) if route_length > 0 else 1.0
    step_pdms = [
        pdms(
            collision_score(r.collisions),
            0.0 if r.offroad_distance > DRIVABLE_AREA_TOLERANCE else 1.0,
            1.0 if r.ttc >= TTC_BOUND else 0.0,
            progress_ratio(r.route_progress, r.expert_progress),
            float(ok),
        )
        for r, ok in zip(records, comfort_ok)
    ]
    return EpisodeScores(
        no_at_fault_collisions=nc,
        drivable_area_compliance=dac,
        driving_direction_compliance=direction,
        making_progress=making_progress,
        ego_progress=ep,
        ttc_within_bound=ttc_ok,
        speed_limit_compliance=speed,
        comfort=comfort,
        nuplan_score=nuplan_score(nc, dac, making_progress, direction, ep, ttc_ok, speed, comfort),
        pdms=pdms(nc, dac, ttc_ok, ep, comfort),
        route_completion=rc,
        arena_score=float(np.mean(step_pdms)) * rc,
        num_collisions=len(all_collisions),
        num_at_fault_collisions=sum(c.at_fault for c in all_collisions),
    )
