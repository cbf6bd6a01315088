"""Flat meshes from 2D shapes: polygons (with holes) and polyline strips."""

from __future__ import annotations

import numpy as np
import shapely
import trimesh
from scipy.spatial import Delaunay, QhullError
from shapely.geometry.base import BaseGeometry


def polygon_mesh(geom: BaseGeometry, z: float, max_edge: float = 1.0) -> trimesh.Trimesh:
    """Upward-facing triangles covering a (Multi)Polygon at height z.

    Delaunay triangulation of the densified boundary, keeping triangles whose centroid is inside.
    """
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), int), process=False)
    if geom.is_empty:
        return empty
    dense = shapely.segmentize(geom, max_edge)
    pts = np.unique(shapely.get_coordinates(dense.boundary), axis=0)
    if len(pts) < 3:
        return empty
    try:
        tri = Delaunay(pts)
    except QhullError:
        return empty
    faces = tri.simplices
    centroids = pts[faces].mean(axis=1)
    faces = faces[shapely.contains_xy(geom, centroids[:, 0], centroids[:, 1])]
    a, b, c = (pts[faces[:, i]] for i in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    faces = np.where((cross < 0)[:, None], faces[:, [0, 2, 1]], faces)
    vertices = np.column_stack([pts, np.full(len(pts), z)])
    return trimesh.Trimesh(vertices, faces, process=False)


def resample_polyline(points: np.ndarray, step: float) -> np.ndarray:
    """Points [P, 2] re-spaced about every `step` metres along the line, ends kept -> [Q, 2]."""
    points = np.asarray(points, np.float64)[:, :2]
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return points[:1]
    s = np.linspace(0.0, arc[-1], max(2, int(np.ceil(arc[-1] / step)) + 1))
    return np.column_stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])])


def strip_mesh(points: np.ndarray, width: float, z: float, offset: float = 0.0) -> trimesh.Trimesh:
    """A flat ribbon of `width` along a polyline [P, 2], shifted `offset` metres to its left, at height z."""
    pts = np.asarray(points, np.float64)[:, :2]
    if len(pts) < 2:
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), int), process=False)
    tangent = np.gradient(pts, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    left = pts + normal * (offset + width / 2)
    right = pts + normal * (offset - width / 2)
    n = len(pts)
    verts = np.column_stack([np.concatenate([left, right]), np.full(2 * n, z)])
    i = np.arange(n - 1)
    faces = np.concatenate([np.stack([i, n + i, n + i + 1], 1), np.stack([i, n + i + 1, i + 1], 1)])
    return trimesh.Trimesh(verts, faces, process=False)


def dashes(points: np.ndarray, dash: float, gap: float, step: float = 0.5) -> list[np.ndarray]:
    """Split a polyline [P, 2] into dash polylines of length `dash` separated by `gap`."""
    dense = resample_polyline(points, step)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    phase = arc % (dash + gap)
    on = phase < dash
    pieces, start = [], None
    for k, flag in enumerate(on):
        if flag and start is None:
            start = k
        if (not flag or k == len(on) - 1) and start is not None:
            if k - start >= 1:
                pieces.append(dense[start : k + 1] if flag else dense[start:k])
            start = None
    return [p for p in pieces if len(p) >= 2]
