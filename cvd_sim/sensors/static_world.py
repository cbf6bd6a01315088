"""The static mesh world of a map: road, markings, crosswalks, curbs, sidewalks, terrain and roadside objects.

Roadside buildings, trees and poles are placed procedurally from the seed, clear of the road and of each other.
"""

from __future__ import annotations

import numpy as np
import shapely
import trimesh
from shapely.geometry import Polygon, box

from cvd_sim.sensors.map_geometry import MapGeometry
from cvd_sim.sensors.materials import SEMANTIC_ID, albedo
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.triangulate import dashes, polygon_mesh, resample_polyline, strip_mesh

CURB_HEIGHT = 0.15
SIDEWALK_WIDTH = 3.0
MARKING_WIDTH = 0.15
TERRAIN_MARGIN = 120.0
BUILDING_COLOURS = np.array(
    [(0.62, 0.57, 0.50), (0.70, 0.68, 0.64), (0.55, 0.36, 0.28), (0.45, 0.47, 0.50), (0.78, 0.74, 0.62)],
    np.float32,
)


def _part(mesh: trimesh.Trimesh, material: str, colour=None) -> MeshSet:
    return MeshSet.from_trimesh(mesh, albedo(material) if colour is None else colour, SEMANTIC_ID[material])


def _ground(geom: MapGeometry) -> list[MeshSet]:
    road = geom.drivable_area
    walk_outer = road.buffer(SIDEWALK_WIDTH, join_style="mitre")
    minx, miny, maxx, maxy = road.bounds
    extent = box(minx - TERRAIN_MARGIN, miny - TERRAIN_MARGIN, maxx + TERRAIN_MARGIN, maxy + TERRAIN_MARGIN)
    parts = [
        _part(polygon_mesh(road, 0.0), "road"),
        _part(polygon_mesh(walk_outer.difference(road), CURB_HEIGHT), "sidewalk"),
        _part(polygon_mesh(extent.difference(walk_outer), CURB_HEIGHT, max_edge=4.0), "terrain"),
    ]
    for ring in shapely.get_parts(shapely.segmentize(road.boundary, 1.0)):
        parts.append(_part(_curb(np.asarray(ring.coords)[:, :2]), "curb"))
    return parts


def _curb(points: np.ndarray) -> trimesh.Trimesh:
    """Vertical wall of CURB_HEIGHT along a ring or line [P, 2], double-sided."""
    n = len(points)
    verts = np.concatenate(
        [np.column_stack([points, np.zeros(n)]), np.column_stack([points, np.full(n, CURB_HEIGHT)])]
    )
    i = np.arange(n - 1)
    quads = np.concatenate([np.stack([i, i + 1, n + i + 1], 1), np.stack([i, n + i + 1, n + i], 1)])
    return trimesh.Trimesh(verts, np.concatenate([quads, quads[:, ::-1]]), process=False)


def _markings(geom: MapGeometry) -> list[MeshSet]:
    parts = []
    for line in geom.road_lines:
        material = f"lane_marking_{line.colour}"
        z = 0.01
        if line.kind == "double":
            pieces = [(line.points, -0.12), (line.points, 0.12)]
        elif line.kind == "broken":
            pieces = [(d, 0.0) for d in dashes(line.points, 3.0, 6.0)]
        else:
            pieces = [(line.points, 0.0)]
        for pts, offset in pieces:
            parts.append(_part(strip_mesh(resample_polyline(pts, 1.0), MARKING_WIDTH, z, offset), material))
    for polygon in geom.crosswalks:
        parts.append(_part(polygon_mesh(_zebra(Polygon(polygon)), 0.012, max_edge=0.5), "crosswalk"))
    return parts


def _zebra(crosswalk: Polygon, stripe: float = 0.5) -> shapely.Geometry:
    """Stripes inside a crosswalk polygon, running across its long side (along the traffic)."""
    rect = np.asarray(crosswalk.minimum_rotated_rectangle.exterior.coords)[:4]
    edges = np.diff(np.vstack([rect, rect[:1]]), axis=0)
    long_axis = edges[np.argmax(np.linalg.norm(edges, axis=1))]
    length = np.linalg.norm(long_axis)
    u = long_axis / length
    v = np.array([-u[1], u[0]])
    centre = rect.mean(axis=0)
    half = max(np.linalg.norm(edges, axis=1)) + 1.0
    stripes = []
    for s in np.arange(-length / 2 + stripe / 2, length / 2, 2 * stripe):
        c = centre + u * s
        corners = [
            c - u * stripe / 2 - v * half,
            c + u * stripe / 2 - v * half,
            c + u * stripe / 2 + v * half,
            c - u * stripe / 2 + v * half,
        ]
        stripes.append(Polygon(corners))
    return shapely.union_all(stripes).intersection(crosswalk.buffer(-0.2))


def _building(centre, yaw, size, height, colour) -> MeshSet:
    mesh = trimesh.creation.box(extents=(size[0], size[1], height))
    mesh.apply_transform(trimesh.transformations.rotation_matrix(yaw, (0, 0, 1)))
    mesh.apply_translation((centre[0], centre[1], CURB_HEIGHT + height / 2))
    return _part(mesh, "building", colour)


def _tree(xy, trunk_h, crown_r) -> list[MeshSet]:
    trunk = trimesh.creation.cylinder(radius=0.18, height=trunk_h, sections=8)
    trunk.apply_translation((xy[0], xy[1], CURB_HEIGHT + trunk_h / 2))
    crown = trimesh.creation.icosphere(subdivisions=1, radius=crown_r)
    crown.apply_scale((1.0, 1.0, 1.3))
    crown.apply_translation((xy[0], xy[1], CURB_HEIGHT + trunk_h + crown_r))
    return [_part(trunk, "trunk"), _part(crown, "vegetation")]


def _pole(xy, height) -> MeshSet:
    pole = trimesh.creation.cylinder(radius=0.09, height=height, sections=8)
    pole.apply_translation((xy[0], xy[1], CURB_HEIGHT + height / 2))
    return _part(pole, "pole")


def _rings(road, distance: float) -> list:
    """Boundary rings of the road grown by `distance` metres (outer edges and city-block edges)."""
    return list(shapely.get_parts(road.buffer(distance).boundary))


def _roadside(geom: MapGeometry, rng: np.random.Generator) -> list[MeshSet]:
    """Poles on the sidewalk, trees just behind it, buildings set back further; nothing overlaps the road."""
    road = geom.drivable_area
    keep_out = road.buffer(SIDEWALK_WIDTH + 0.5)
    parts, footprints = [], []

    def free(footprint) -> bool:
        return not footprint.intersects(keep_out) and not any(footprint.intersects(f) for f in footprints)

    for ring in _rings(road, SIDEWALK_WIDTH - 0.6):
        for s in np.arange(rng.uniform(0, 25), ring.length, 25.0):
            parts.append(_pole(np.asarray(ring.interpolate(s).coords[0]), rng.uniform(6.0, 8.5)))
    for ring in _rings(road, SIDEWALK_WIDTH + 2.5):
        for s in np.arange(rng.uniform(0, 10), ring.length, 10.0):
            xy = np.asarray(ring.interpolate(s).coords[0])
            r = rng.uniform(1.4, 2.4)
            if rng.random() < 0.6 and free(shapely.Point(xy).buffer(r)):
                footprints.append(shapely.Point(xy).buffer(r))
                parts.extend(_tree(xy, rng.uniform(2.0, 3.5), r))
    grown = road.buffer(SIDEWALK_WIDTH + 5.0)
    for ring in shapely.get_parts(grown.boundary):
        s = rng.uniform(0, 8)
        while s < ring.length:
            a = np.asarray(ring.interpolate(s).coords[0])
            b = np.asarray(ring.interpolate(min(s + 1.0, ring.length)).coords[0])
            tangent = (b - a) / max(np.linalg.norm(b - a), 1e-9)
            normal = np.array([-tangent[1], tangent[0]])
            frontage, depth = rng.uniform(10, 24), rng.uniform(8, 18)
            side = -1.0 if shapely.contains_xy(grown, *(a + normal)) else 1.0  # away from the road
            centre = a + tangent * frontage / 2 + side * normal * (depth / 2 + rng.uniform(0.5, 4.0))
            yaw = np.arctan2(tangent[1], tangent[0])
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (frontage / 2, depth / 2)
            rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
            footprint = Polygon(corners @ rot.T + centre)
            if rng.random() < 0.8 and free(footprint):
                footprints.append(footprint)
                colour = BUILDING_COLOURS[rng.integers(len(BUILDING_COLOURS))] * rng.uniform(0.85, 1.1)
                parts.append(_building(centre, yaw, (frontage, depth), rng.uniform(6, 30), colour))
            s += frontage + rng.uniform(1.0, 6.0)
    return parts


def build_static_world(geom: MapGeometry, seed: int = 0) -> MeshSet:
    """All static meshes of a map in the world frame; roadside objects drawn from `seed`."""
    rng = np.random.default_rng(seed)
    return MeshSet.concatenate(_ground(geom) + _markings(geom) + _roadside(geom, rng))
