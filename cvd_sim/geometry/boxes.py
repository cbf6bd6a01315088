"""Oriented boxes `[N, 7]` (x, y, z centre, length, width, height, yaw): corners, edges, shapely footprints."""

from __future__ import annotations

import numpy as np
import shapely

# corner order of `box_corners_bev`: front-left, front-right, rear-right, rear-left (counter-clockwise is
# front-left -> rear-left -> rear-right -> front-right; shapely accepts either winding)
_BEV_SIGNS = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])

# 3D corners: the four bottom corners (BEV order) then the four top corners
_CORNER_SIGNS_3D = np.concatenate(
    [np.concatenate([_BEV_SIGNS, -np.ones((4, 1))], 1), np.concatenate([_BEV_SIGNS, np.ones((4, 1))], 1)]
)
# 12 wireframe edges as index pairs into the 8 corners
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)


def box_corners_bev(boxes: np.ndarray) -> np.ndarray:
    """Boxes [..., 7] -> BEV corners [..., 4, 2]: front-left, front-right, rear-right, rear-left."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = boxes[..., None, 3:5] / 2.0 * _BEV_SIGNS
    c, s = np.cos(boxes[..., 6:7]), np.sin(boxes[..., 6:7])
    x = boxes[..., None, 0] + half[..., 0] * c - half[..., 1] * s
    y = boxes[..., None, 1] + half[..., 0] * s + half[..., 1] * c
    return np.stack([x, y], axis=-1)


def box_corners_3d(boxes: np.ndarray) -> np.ndarray:
    """Boxes [..., 7] -> 3D corners [..., 8, 3]: bottom face (BEV order) then top face."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = boxes[..., None, 3:6] / 2.0 * _CORNER_SIGNS_3D
    c, s = np.cos(boxes[..., 6:7]), np.sin(boxes[..., 6:7])
    x = boxes[..., None, 0] + half[..., 0] * c - half[..., 1] * s
    y = boxes[..., None, 1] + half[..., 0] * s + half[..., 1] * c
    z = boxes[..., None, 2] + half[..., 2]
    return np.stack([x, y, z], axis=-1)


def box_polygons(boxes: np.ndarray) -> np.ndarray:
    """Boxes [N, 7] -> object array [N] of shapely Polygons (BEV footprints), built vectorised."""
    corners = box_corners_bev(np.asarray(boxes).reshape(-1, 7))
    return shapely.polygons(corners)


def front_bumper(box: np.ndarray) -> shapely.LineString:
    """Front edge of one box [7] as a LineString (front-left to front-right corner)."""
    corners = box_corners_bev(box)
    return shapely.LineString(corners[:2])
