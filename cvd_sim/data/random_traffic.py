"""Random scenarios for SynthDrive: a procedural map with IDM traffic, cyclists, pedestrians and road works."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Point

from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.map_queries import RoadMap, road_map
from cvd_sim.scenarios.procedural import random_map
from cvd_sim.scenarios.schema import (
    AgentSpec,
    ConstantVelocityBehavior,
    EgoSpec,
    IdmBehavior,
    Pose,
    Scenario,
    SceneSpec,
    StaticBehavior,
)

VEHICLE_MIX = (("car", 0.72), ("truck", 0.08), ("bus", 0.05), ("motorcycle", 0.05), ("bicycle", 0.10))
TIMES = (("day", 0.55), ("dawn", 0.05), ("dusk", 0.2), ("night", 0.2))
WEATHERS = (("clear", 0.6), ("cloudy", 0.25), ("rain", 0.15))
PLACES = ("city street", "suburban road", "downtown avenue", "industrial area", "residential street")


def _pick(rng: np.random.Generator, table) -> str:
    names, weights = zip(*table)
    return str(rng.choice(names, p=np.asarray(weights) / sum(weights)))


def _route(rmap: RoadMap, start: str, rng: np.random.Generator, length: int = 6) -> list[str]:
    """A random chain of successor lanes from `start`."""
    route = [start]
    for _ in range(length - 1):
        nxt = [v for v in rmap.graph.successors(route[-1]) if rmap.link_kind(route[-1], v) == "successor"]
        nxt = [v for v in nxt if v not in route]
        if not nxt:
            break
        route.append(str(rng.choice(sorted(nxt))))
    return route


def _vehicles(rmap: RoadMap, rng: np.random.Generator, count: int) -> list[AgentSpec]:
    lanes = sorted(rmap.lanes)
    out = []
    for i in range(count):
        lane_id = str(rng.choice(lanes))
        lane = rmap.lane(lane_id)
        x, y, yaw = rmap.pose_on_lane(lane_id, float(rng.uniform(0.1, 0.9) * lane.length))
        category = _pick(rng, VEHICLE_MIX)
        slow = category == "bicycle"
        out.append(
            AgentSpec(
                id=f"vehicle_{i}",
                category=category,
                pose=Pose(x=x, y=y, yaw=yaw),
                speed=float(rng.uniform(1, 4) if slow else rng.uniform(3, 10)),
                behavior=IdmBehavior(
                    route=_route(rmap, lane_id, rng), desired_speed=float(rng.uniform(3, 6)) if slow else None
                ),
            )
        )
    return out


def _roadside(rmap: RoadMap, rng: np.random.Generator, pedestrians: int, objects: int) -> list[AgentSpec]:
    """Pedestrians walking along the sidewalk, cones and barriers at the kerb."""
    ring = rmap.drivable_area.exterior if rmap.drivable_area.geom_type == "Polygon" else None
    if ring is None:
        ring = max(rmap.drivable_area.geoms, key=lambda p: p.area).exterior
    out = []
    for i in range(pedestrians + objects):
        s = float(rng.uniform(0, ring.length))
        a, b = np.asarray(ring.interpolate(s).coords[0]), np.asarray(ring.interpolate(s + 1.0).coords[0])
        tangent = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        normal = np.array([-tangent[1], tangent[0]])
        outward = 1.0 if not rmap.drivable_area.contains(Point(*(a + normal))) else -1.0
        yaw = float(np.arctan2(tangent[1], tangent[0]))
        if i < pedestrians:
            xy = a + outward * normal * float(rng.uniform(1.0, 2.5))
            speed = float(rng.uniform(0.8, 1.6)) if rng.random() < 0.7 else 0.0
            yaw += np.pi * float(rng.integers(2))
            out.append(
                AgentSpec(
                    id=f"pedestrian_{i}", category="pedestrian", pose=Pose(x=xy[0], y=xy[1], yaw=yaw), speed=speed,
                    behavior=ConstantVelocityBehavior() if speed else StaticBehavior(),
                )
            )  # fmt: skip
        else:
            category = "traffic_cone" if rng.random() < 0.6 else "barrier"
            xy = a - outward * normal * 0.6
            out.append(AgentSpec(id=f"object_{i}", category=category, pose=Pose(x=xy[0], y=xy[1], yaw=yaw)))
    return out


def random_scenario(seed: int, duration: float, dt: float = 0.1) -> Scenario:
    """A valid random scenario (agents that would overlap or leave the map are dropped)."""
    rng = np.random.default_rng(seed)
    spec = random_map(int(rng.integers(2**31)))
    rmap = road_map(spec)
    lanes = sorted(rmap.lanes, key=lambda k: -rmap.lane(k).length)
    ego_lane = str(rng.choice(lanes[: max(1, len(lanes) // 2)]))
    x, y, yaw = rmap.pose_on_lane(ego_lane, float(rng.uniform(0.05, 0.3) * rmap.lane(ego_lane).length))
    ego = EgoSpec(
        pose=Pose(x=x, y=y, yaw=yaw), speed=float(rng.uniform(2, 9)), route=_route(rmap, ego_lane, rng)
    )
    agents = _vehicles(rmap, rng, int(rng.integers(3, 12))) + _roadside(
        rmap, rng, int(rng.integers(0, 7)), int(rng.integers(0, 4))
    )
    scene = SceneSpec(
        time_of_day=_pick(rng, TIMES), weather=_pick(rng, WEATHERS), place=str(rng.choice(PLACES))
    )
    for _ in range(len(agents) + 1):
        try:
            return Scenario(
                name=f"synth-{seed}", duration=duration, dt=dt, seed=seed % 2**31, scene=scene, map=spec, ego=ego,
                agents=agents, tags=["synthdrive", spec.name],
            )  # fmt: skip
        except ScenarioError as err:
            bad = {int(p.field.split(".")[1]) for p in err.problems if p.field.startswith("agents.")}
            if not bad:
                raise
            agents = [a for i, a in enumerate(agents) if i not in bad]
    raise RuntimeError(f"random scenario {seed}: could not place agents")
