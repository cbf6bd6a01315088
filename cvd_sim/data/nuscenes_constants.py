"""Fixed nuScenes v1.0 records SynthDrive shares with real nuScenes: sensors, categories, attributes, visibility."""

from __future__ import annotations

from cvd_sim.data.tokens import token
from cvd_sim.geometry.camera import NUSCENES_CAMERAS
from cvd_sim.scenarios.categories import CATEGORIES, CATEGORY_ID

LIDAR_CHANNEL = "LIDAR_TOP"
ATTRIBUTES = (
    "vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider", "cycle.without_rider",
    "pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving",
)  # fmt: skip
VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))


def sensor_token(channel: str) -> str:
    return token("sensor", channel)


def category_token(category: int) -> str:
    return token("category", CATEGORIES[category].nuscenes_name)


def attribute_token(name: str) -> str:
    return token("attribute", name)


def static_tables() -> dict[str, list[dict]]:
    """sensor, category, attribute and visibility tables."""
    sensors = [{"token": sensor_token(c), "channel": c, "modality": "camera"} for c in NUSCENES_CAMERAS]
    sensors.append({"token": sensor_token(LIDAR_CHANNEL), "channel": LIDAR_CHANNEL, "modality": "lidar"})
    categories = [
        {"token": category_token(i), "name": c.nuscenes_name, "description": c.name, "index": i}
        for i, c in enumerate(CATEGORIES)
    ]
    attributes = [{"token": attribute_token(a), "name": a, "description": a} for a in ATTRIBUTES]
    visibility = [{"token": t, "level": level, "description": level} for t, level in VISIBILITY]
    return {"sensor": sensors, "category": categories, "attribute": attributes, "visibility": visibility}


def attribute_for(category: int, speed: float) -> str | None:
    """nuScenes attribute of a road user moving at `speed` m/s (None for objects without one)."""
    name = CATEGORIES[category].name
    if name in ("bicycle", "motorcycle"):
        return "cycle.with_rider"
    if name == "pedestrian":
        return "pedestrian.moving" if speed > 0.2 else "pedestrian.standing"
    if CATEGORIES[category].is_vehicle:
        return "vehicle.moving" if speed > 0.2 else "vehicle.stopped"
    return None


_DETECTION_PREFIXES = (
    ("vehicle.car", "car"), ("vehicle.truck", "truck"), ("vehicle.construction", "truck"),
    ("vehicle.trailer", "truck"), ("vehicle.bus", "bus"), ("human.pedestrian", "pedestrian"),
    ("vehicle.bicycle", "bicycle"), ("vehicle.motorcycle", "motorcycle"),
    ("movable_object.trafficcone", "traffic_cone"), ("movable_object.barrier", "barrier"),
)  # fmt: skip


def detection_category(nuscenes_name: str) -> int | None:
    """Our category id of a full nuScenes category name (nuScenes detection grouping), None if not a class."""
    for prefix, name in _DETECTION_PREFIXES:
        if nuscenes_name.startswith(prefix):
            return CATEGORY_ID[name]
    return None
