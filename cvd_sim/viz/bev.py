"""Fast ego-centred bird's-eye-view panel (PIL): drivable area, lane lines, route, agents, ego.

The ego sits at the horizontal centre, 2/3 down, facing up. `extent` = metres from the ego to the top edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from PIL import Image, ImageDraw

from cvd_sim.geometry.boxes import box_corners_bev
from cvd_sim.geometry.transforms import invert_pose
from cvd_sim.scenarios.categories import CATEGORIES

ROAD = (70, 70, 76)
GROUND = (28, 30, 34)
LINE = (150, 150, 150)
ROUTE = (60, 200, 255)
EGO = (40, 220, 90)
TRAIL = (40, 150, 70)


@dataclass(frozen=True)
class BevMap:
    """World-frame map geometry for `bev_panel`: drivable area rings (exteriors, holes) and lines, each [P, 2]."""

    exteriors: list[np.ndarray]
    holes: list[np.ndarray]
    lines: list[np.ndarray]

    @classmethod
    def from_geometry(cls, drivable_area, lines: list[np.ndarray]) -> BevMap:
        polys = list(shapely.get_parts(drivable_area))
        return cls(
            exteriors=[np.asarray(p.exterior.coords)[:, :2] for p in polys],
            holes=[np.asarray(r.coords)[:, :2] for p in polys for r in p.interiors],
            lines=[np.asarray(line, np.float64)[:, :2] for line in lines],
        )


def bev_panel(
    bev_map: BevMap,
    ego_to_world: np.ndarray,
    ego_box: np.ndarray,
    boxes: np.ndarray,
    categories: np.ndarray,
    route: np.ndarray | None = None,
    trail: np.ndarray | None = None,
    size: int = 256,
    extent: float = 40.0,
) -> np.ndarray:
    """uint8 [size, size, 3]. ego_to_world [4, 4]; ego_box [7] and boxes [N, 7] world frame; categories [N];
    route [P, 2] and trail (past ego positions) [T, 2] world frame."""
    world_to_ego = invert_pose(np.asarray(ego_to_world, np.float64))
    scale = size / (1.5 * extent)
    cx, cy = size / 2.0, size * 2.0 / 3.0

    def px(xy: np.ndarray) -> list[tuple[float, float]]:
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        local = xy @ world_to_ego[:2, :2].T + world_to_ego[:2, 3]
        return list(zip((cx - local[:, 1] * scale).tolist(), (cy - local[:, 0] * scale).tolist()))

    image = Image.new("RGB", (size, size), GROUND)
    draw = ImageDraw.Draw(image)
    for ring in bev_map.exteriors:
        draw.polygon(px(ring), fill=ROAD)
    for ring in bev_map.holes:
        draw.polygon(px(ring), fill=GROUND)
    for line in bev_map.lines:
        draw.line(px(line), fill=LINE, width=1)
    if route is not None and len(route) > 1:
        draw.line(px(route), fill=ROUTE, width=max(1, size // 128))
    if trail is not None and len(trail) > 1:
        draw.line(px(trail), fill=TRAIL, width=max(1, size // 128))
    for box, cat in zip(np.asarray(boxes).reshape(-1, 7), np.asarray(categories).reshape(-1)):
        colour = CATEGORIES[int(cat)].color_rgb if 0 <= int(cat) < len(CATEGORIES) else (255, 255, 255)
        _box(draw, px, box, colour)
    _box(draw, px, np.asarray(ego_box), EGO)
    return np.asarray(image)


def _box(draw: ImageDraw.ImageDraw, px, box: np.ndarray, colour) -> None:
    corners = px(box_corners_bev(box[None])[0])
    draw.polygon(corners, fill=colour, outline=(255, 255, 255))
    # heading tick: centre to the middle of the front edge (corners 0 and 1 are the front pair)
    front = ((corners[0][0] + corners[1][0]) / 2, (corners[0][1] + corners[1][1]) / 2)
    centre = px(box[None, :2])[0]
    draw.line([centre, front], fill=(0, 0, 0), width=1)
