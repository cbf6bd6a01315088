"""Map polylines around a place from a nuScenes map expansion (`NuScenesMap`), resampled to fixed size.

Types: 0 divider (lane and road dividers), 1 pedestrian crossing, 2 drivable-area boundary, 3 lane centreline.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import shapely
from nuscenes.map_expansion import map_api
from shapely.geometry import LineString, box

MAP_TYPES = ("divider", "ped_crossing", "boundary", "lane_centerline")


@cache
def open_map(dataroot: str, location: str) -> map_api.NuScenesMap:
    """`NuScenesMap` of a location; locations other than nuScenes' four (SynthDrive's) are registered first."""
    path = os.path.join(dataroot, "maps", "expansion", f"{location}.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no map expansion for location {location!r}; for real nuScenes, unpack the map expansion "
            "pack (v1.3) into <dataroot>/maps/expansion/"
        )
    if location not in map_api.locations:
        map_api.locations.append(location)
    return map_api.NuScenesMap(dataroot=dataroot, map_name=location)


def _resample(line: LineString, points: int) -> np.ndarray:
    s = np.linspace(0.0, line.length, points)
    return np.array([line.interpolate(d).coords[0][:2] for d in s])


def map_polylines(
    nusc_map: map_api.NuScenesMap, patch: tuple[float, float, float, float], max_polylines: int, points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Polylines inside patch (x_min, y_min, x_max, y_max), world frame.

    Returns polylines [M, P, 3] float32 (z = 0, zero-padded) and types [M] int64 (-1 = padding).
    """
    layers = ["lane_divider", "road_divider", "ped_crossing", "drivable_area", "lane", "lane_connector"]
    records = nusc_map.get_records_in_patch(patch, layers, mode="intersect")
    clip = box(*patch)
    shapes: list[tuple[int, object]] = []
    for layer in ("lane_divider", "road_divider"):
        for tok in sorted(records[layer]):
            shapes.append((0, nusc_map.extract_line(nusc_map.get(layer, tok)["line_token"])))
    for tok in sorted(records["ped_crossing"]):
        shapes.append(
            (1, nusc_map.extract_polygon(nusc_map.get("ped_crossing", tok)["polygon_token"]).exterior)
        )
    for tok in sorted(records["drivable_area"]):
        for poly_tok in nusc_map.get("drivable_area", tok)["polygon_tokens"]:
            shapes.append((2, nusc_map.extract_polygon(poly_tok).boundary))
    lanes = sorted(records["lane"]) + sorted(records["lane_connector"])
    for poses in nusc_map.discretize_lanes(lanes, 1.0).values():
        if len(poses) >= 2:
            shapes.append((3, LineString(np.asarray(poses)[:, :2])))
    out = np.zeros((max_polylines, points, 3), np.float32)
    types = np.full(max_polylines, -1, np.int64)
    m = 0
    for kind, geom in shapes:
        for part in shapely.get_parts(geom.intersection(clip)):
            if m == max_polylines:
                return out, types
            if part.geom_type != "LineString" or part.length < 0.5:
                continue
            out[m, :, :2] = _resample(part, points)
            types[m] = kind
            m += 1
    return out, types
