"""Geometry of a map: lane Frenet frames, drivable area (shapely), lane graph (networkx), routing.

`road_map(spec)` builds a `RoadMap` once per distinct map and caches it.
Frenet coordinates: s = arc length along the lane centreline (extrapolated linearly before the start
and after the end), d = signed lateral offset, positive to the left of the driving direction.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import networkx as nx
import numpy as np
from cvd_sim.scenarios.schema import LaneSpec, MapSpec
from shapely import STRtree
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union

LANE_CHANGE_COST = 20.0  # metres of route cost charged for one lane change
_CACHE_SIZE = 32


def _clean_polyline(points) -> np.ndarray:
    """[P, 2] float64 without consecutive duplicate points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    keep = np.ones(len(pts), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-9
    return pts[keep]


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


class Polyline2D:
    """A polyline with arc-length parametrisation and a continuous Frenet frame.

    The normal is interpolated linearly between vertex normals (the bisectors of adjacent segments), so
    `xy(s, d)` is continuous and `frenet` is its exact inverse near the line; s is the arc length of the
    foot point on the polyline. Points are `[..., 2]`, s and d are `[...]`.
    """

    def __init__(self, points):
        self.points = _clean_polyline(points)
        if len(self.points) < 2:
            raise ValueError("polyline has zero length")
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.linalg.norm(seg, axis=1)  # [S]
        self.unit = seg / self.seg_len[:, None]  # [S, 2]
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])  # [S + 1]
        self.length = float(self.cum[-1])
        left = np.column_stack([-self.unit[:, 1], self.unit[:, 0]])  # [S, 2] segment normals
        vertex = np.concatenate([left[:1], left[:-1] + left[1:], left[-1:]])  # [S + 1, 2]
        norm = np.linalg.norm(vertex, axis=1, keepdims=True)
        fold = norm[:, 0] < 1e-6  # a 180° reversal: keep the next segment's normal
        vertex[fold] = np.concatenate([left, left[-1:]])[fold]
        self.vertex_normal = vertex / np.linalg.norm(vertex, axis=1, keepdims=True)

    def _normal(self, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Unit normal [..., 2] at fraction t (clamped to [0, 1]) of segment i."""
        tau = np.clip(t, 0.0, 1.0)[..., None]
        n = (1 - tau) * self.vertex_normal[i] + tau * self.vertex_normal[i + 1]
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def frenet(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """xy [..., 2] -> (s [...], d [...]); d > 0 on the left of the direction of travel."""
        p = np.asarray(xy, dtype=np.float64)
        flat = p.reshape(-1, 2)
        a, e = self.points[:-1], self.points[1:] - self.points[:-1]  # [S, 2]
        n0, n1 = self.vertex_normal[:-1], self.vertex_normal[1:]
        q = flat[:, None, :] - a[None]  # [N, S, 2]
        # the foot parameter t solves cross((1 - t) n0 + t n1, q - t e) = 0, a quadratic A t^2 + B t + C
        qa = np.broadcast_to(-_cross(n1 - n0, e), q.shape[:2])
        qb = _cross((n1 - n0)[None], q) - _cross(n0, e)[None]
        qc = _cross(n0[None], q)
        linear = np.abs(qa) < 1e-12 * self.seg_len[None]
        with np.errstate(all="ignore"):
            disc = qb * qb - 4 * qa * qc
            root = np.sqrt(np.maximum(disc, 0.0))
            r1 = np.where(linear, -qc / qb, (-qb + root) / (2 * qa))
            r2 = np.where(linear, np.nan, (-qb - root) / (2 * qa))
        roots = np.stack([r1, r2], axis=-1)  # [N, S, 2]
        roots[~linear & (disc < 0)] = np.nan
        eps = 1e-9
        valid = np.isfinite(roots) & (roots >= -eps) & (roots <= 1 + eps)
        t = np.where(valid, roots, 0.0)
        seg = np.broadcast_to(np.arange(len(e))[None, :, None], t.shape)
        normal = self._normal(seg, t)
        foot = a[seg] + t[..., None] * e[seg]
        d = np.sum((flat[:, None, None, :] - foot) * normal, axis=-1)
        cost = np.where(valid, np.abs(d), np.inf).reshape(len(flat), -1)
        s_all = (self.cum[:-1][seg] + t * self.seg_len[seg]).reshape(len(flat), -1)
        d_all = d.reshape(len(flat), -1)
        # straight extensions before the start and after the end
        q0, qn = flat - self.points[0], flat - self.points[-1]
        s_pre, s_post = q0 @ self.unit[0], qn @ self.unit[-1]
        d_pre, d_post = _cross(self.unit[0], q0), _cross(self.unit[-1], qn)
        cost = np.column_stack(
            [cost, np.where(s_pre < 0, np.abs(d_pre), np.inf), np.where(s_post > 0, np.abs(d_post), np.inf)]
        )
        s_all = np.column_stack([s_all, s_pre, self.length + s_post])
        d_all = np.column_stack([d_all, d_pre, d_post])
        best = np.argmin(cost, axis=1)
        rows = np.arange(len(flat))
        s_out, d_out = s_all[rows, best], d_all[rows, best]
        lost = ~np.isfinite(cost[rows, best])  # no foot point (near a centre of curvature): nearest point
        if lost.any():
            s_out[lost], d_out[lost] = self._nearest_projection(flat[lost])
        return s_out.reshape(p.shape[:-1]), d_out.reshape(p.shape[:-1])

    def _nearest_projection(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = flat[:, None, :] - self.points[None, :-1, :]
        t = np.clip(np.einsum("nsk,sk->ns", rel, self.unit), 0.0, self.seg_len)
        foot = self.points[None, :-1, :] + t[..., None] * self.unit[None]
        i = np.argmin(np.sum((flat[:, None, :] - foot) ** 2, axis=-1), axis=1)
        n = np.arange(len(flat))
        return self.cum[i] + t[n, i], _cross(self.unit[i], flat - foot[n, i])

    def _segment(self, s) -> tuple[np.ndarray, np.ndarray]:
        """Segment index and arc length into it (negative / beyond on the end segments)."""
        s = np.asarray(s, dtype=np.float64)
        i = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seg_len) - 1)
        return i, s - self.cum[i]

    def xy(self, s, d=0.0) -> np.ndarray:
        """(s [...], d [...]) -> xy [..., 2]."""
        i, along = self._segment(s)
        normal = self._normal(i, along / self.seg_len[i])
        return (
            self.points[i]
            + along[..., None] * self.unit[i]
            + np.asarray(d, dtype=np.float64)[..., None] * normal
        )

    def heading(self, s) -> np.ndarray:
        """Yaw [...] of the frame's tangent at s (radians), continuous along the line."""
        i, along = self._segment(s)
        n = self._normal(i, along / self.seg_len[i])
        return np.arctan2(-n[..., 0], n[..., 1])

    def resample(self, step: float) -> np.ndarray:
        """Points [P, 2] every `step` metres, ends included."""
        n = max(2, math.ceil(self.length / step) + 1)
        return self.xy(np.linspace(0.0, self.length, n))


class LaneGeometry(Polyline2D):
    """A lane's centreline Frenet frame and its surface polygon."""

    def __init__(self, spec: LaneSpec):
        super().__init__(spec.centerline)
        self.id = spec.id
        self.spec = spec
        self.width = spec.width
        if spec.left_boundary is not None and spec.right_boundary is not None:
            ring = list(spec.left_boundary) + list(reversed(spec.right_boundary))
            self.polygon = Polygon(ring).buffer(0)
        else:
            self.polygon = LineString(self.points).buffer(
                spec.width / 2, cap_style="flat", join_style="round"
            )
        self.line = LineString(self.points)


@dataclass(frozen=True)
class LaneMatch:
    lane_id: str
    s: float
    d: float
    distance: float  # |d| inside the lane's extent, else the distance to its centreline


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


class RoadMap:
    """Derived geometry of a `MapSpec`: lanes, drivable area, crosswalks, lane graph and routing."""

    def __init__(self, spec: MapSpec):
        self.spec = spec
        self.lanes: dict[str, LaneGeometry] = {lane.id: LaneGeometry(lane) for lane in spec.lanes}
        self._ids = list(self.lanes)
        self._tree = STRtree([self.lanes[i].line for i in self._ids])
        union = unary_union([lane.polygon for lane in self.lanes.values()])
        self.drivable_area = union.buffer(0.05, join_style="mitre").buffer(-0.05, join_style="mitre")
        self.crosswalks = {c.id: Polygon(c.polygon).buffer(0) for c in spec.crosswalks}
        self.graph = self._build_graph()

    def _build_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for lane_id, lane in self.lanes.items():
            graph.add_node(lane_id, length=lane.length)
        for lane_id, lane in self.lanes.items():
            spec = lane.spec
            for nxt in spec.successors:
                if nxt in self.lanes:
                    graph.add_edge(lane_id, nxt, kind="successor", weight=lane.length)
            for prev in spec.predecessors:
                if prev in self.lanes and not graph.has_edge(prev, lane_id):
                    graph.add_edge(prev, lane_id, kind="successor", weight=self.lanes[prev].length)
            for kind, neighbours in (("left", spec.left_neighbors), ("right", spec.right_neighbors)):
                for nb in neighbours:
                    if nb in self.lanes and not graph.has_edge(lane_id, nb):
                        graph.add_edge(lane_id, nb, kind=kind, weight=LANE_CHANGE_COST)
        return graph

    # ------------------------------------------------------------ lanes

    def lane(self, lane_id: str) -> LaneGeometry:
        try:
            return self.lanes[lane_id]
        except KeyError:
            raise KeyError(f"no lane {lane_id!r} in map {self.spec.name!r}") from None

    def nearest_lane(
        self, x: float, y: float, yaw: float | None = None, heading_weight: float = 4.0
    ) -> LaneMatch:
        """The lane closest to (x, y); with `yaw`, lanes pointing the other way are penalised
        by `heading_weight` metres per radian of heading difference."""
        point = Point(x, y)
        nearest = self._ids[int(self._tree.nearest(point))]
        radius = self.lanes[nearest].line.distance(point) + 6.0
        candidates = [self._ids[int(i)] for i in self._tree.query(point.buffer(radius))] or [nearest]
        best, best_cost = None, math.inf
        for lane_id in candidates:
            lane = self.lanes[lane_id]
            s, d = (float(v) for v in lane.frenet([x, y]))
            along = max(0.0, -s, s - lane.length)  # distance past an end
            distance = math.hypot(along, max(0.0, abs(d) - lane.width / 2)) if along else abs(d)
            cost = distance
            if yaw is not None:
                cost += heading_weight * _angle_diff(yaw, float(lane.heading(min(max(s, 0.0), lane.length))))
            if cost < best_cost:
                best, best_cost = LaneMatch(lane_id, s, d, distance), cost
        return best

    def lanes_at(self, x: float, y: float) -> list[str]:
        """Ids of the lanes whose surface contains (x, y)."""
        point = Point(x, y)
        return [i for i in self._ids if self.lanes[i].polygon.covers(point)]

    def frenet(self, lane_id: str, x: float, y: float) -> tuple[float, float]:
        s, d = self.lane(lane_id).frenet([x, y])
        return float(s), float(d)

    def xy(self, lane_id: str, s: float, d: float = 0.0) -> tuple[float, float]:
        p = self.lane(lane_id).xy(s, d)
        return float(p[0]), float(p[1])

    def pose_on_lane(self, lane_id: str, s: float, d: float = 0.0) -> tuple[float, float, float]:
        """(x, y, yaw) at arc length s and lateral offset d of a lane, facing its direction."""
        lane = self.lane(lane_id)
        x, y = self.xy(lane_id, s, d)
        return x, y, float(lane.heading(s))

    def on_drivable_area(self, geometry, tolerance: float = 0.0) -> bool:
        return (
            self.drivable_area.buffer(tolerance).covers(geometry)
            if tolerance
            else self.drivable_area.covers(geometry)
        )

    # ------------------------------------------------------------ routes

    def shortest_route(self, start: str, goal: str, allow_lane_change: bool = True) -> list[str]:
        """Lane ids from `start` to `goal` of least length (lane changes cost LANE_CHANGE_COST)."""
        self.lane(start), self.lane(goal)
        graph = self.graph
        if not allow_lane_change:
            graph = graph.edge_subgraph([(u, v) for u, v, k in graph.edges(data="kind") if k == "successor"])
            graph = nx.DiGraph(graph)
            graph.add_nodes_from([start, goal])
        try:
            return list(nx.shortest_path(graph, start, goal, weight="weight"))
        except nx.NetworkXNoPath:
            raise ValueError(f"no route from lane {start!r} to lane {goal!r}") from None

    def link_kind(self, a: str, b: str) -> str | None:
        """ "successor", "left", "right" or None when lane b does not follow lane a."""
        data = self.graph.get_edge_data(a, b)
        return None if data is None else data["kind"]

    def route_path(self, route: list[str], lane_change_length: float = 20.0) -> np.ndarray:
        """Centreline [P, 2] driven along a lane route; lane changes blend over `lane_change_length`."""
        pts: list[np.ndarray] = []
        start_s = 0.0
        for k, lane_id in enumerate(route):
            lane = self.lane(lane_id)
            nxt = route[k + 1] if k + 1 < len(route) else None
            kind = self.link_kind(lane_id, nxt) if nxt else None
            if kind in ("left", "right"):
                # leave this lane halfway through what is left of it, arrive on the neighbour later
                leave = start_s + max(0.0, lane.length - start_s) / 2
                seg = lane.xy(np.linspace(start_s, leave, max(2, int((leave - start_s) / 2) + 2)))
                pts.append(seg)
                target = self.lane(nxt)
                s_target, _ = target.frenet(lane.xy(leave))
                start_s = float(min(s_target + lane_change_length, target.length))
            else:
                s_grid = np.concatenate([[start_s], lane.cum[lane.cum > start_s]])
                pts.append(lane.xy(s_grid))
                start_s = 0.0
        return _clean_polyline(np.concatenate(pts, axis=0))


_cache: OrderedDict[str, RoadMap] = OrderedDict()


def road_map(spec: MapSpec) -> RoadMap:
    """The cached `RoadMap` of a map spec (keyed by its content)."""
    key = spec.model_dump_json()
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    built = RoadMap(spec)
    _cache[key] = built
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return built
