"""Road-user categories: nuScenes detection names, ids, full nuScenes names, default sizes and colours.

Every part of cvd-sim that stores a category id uses the index into `CATEGORIES`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str  # nuScenes detection name
    nuscenes_name: str  # full nuScenes category name (category.json)
    size_lwh: tuple[float, float, float]  # default length, width, height in metres
    color_rgb: tuple[int, int, int]  # colour used in layout images and plots
    is_vehicle: bool


CATEGORIES: tuple[Category, ...] = (
    Category("car", "vehicle.car", (4.6, 1.9, 1.6), (255, 158, 0), True),
    Category("truck", "vehicle.truck", (7.5, 2.5, 3.2), (255, 99, 71), True),
    Category("bus", "vehicle.bus.rigid", (11.5, 2.9, 3.4), (255, 69, 0), True),
    Category("pedestrian", "human.pedestrian.adult", (0.7, 0.7, 1.75), (0, 0, 230), False),
    Category("bicycle", "vehicle.bicycle", (1.8, 0.6, 1.6), (220, 20, 60), False),
    Category("motorcycle", "vehicle.motorcycle", (2.1, 0.8, 1.5), (255, 61, 99), True),
    Category("traffic_cone", "movable_object.trafficcone", (0.4, 0.4, 0.8), (47, 79, 79), False),
    Category("barrier", "movable_object.barrier", (0.5, 2.5, 1.0), (112, 128, 144), False),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
CATEGORY_ID: dict[str, int] = {c.name: i for i, c in enumerate(CATEGORIES)}


def category_id(name: str) -> int:
    """Id of a category given its detection name ("car") or full nuScenes name ("vehicle.car")."""
    if name in CATEGORY_ID:
        return CATEGORY_ID[name]
    for i, c in enumerate(CATEGORIES):
        if c.nuscenes_name == name:
            return i
    raise KeyError(f"unknown category {name!r}; expected one of {', '.join(CATEGORY_NAMES)}")
