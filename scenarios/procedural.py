"""Procedural maps, parametric and seeded: straight and curved roads, 4-way and T junctions, on-ramp merge.

Right-hand traffic. Lane ids on roads: `f{i}` in the road's direction and `b{i}` against it, i = 0 at the
kerb, so the left neighbour of `f{i}` is `f{i+1}`. Junction arms are named by compass direction
(`east`, `north`, `west`, `south`) with lanes `{arm}_in_{i}` (towards the centre) and `{arm}_out_{i}`,
and connectors `{arm}_{straight|left|right}_{i}`.
"""

from __future__ import annotations

import math

import numpy as np
from cvd_sim.scenarios.schema import (
    CrosswalkSpec,
    LaneSpec,
    MapSpec,
    RoadEdgeSpec,
    RoadLineSpec,
    StopLineSpec,
)

SAMPLE_STEP = 2.0  # metres between generated polyline points
ARM_NAMES = {0: "east", 90: "north", 180: "west", 270: "south"}


def _pts(array: np.ndarray) -> list[tuple[float, float]]:
    return [(round(float(x), 4), round(float(y), 4)) for x, y in array]


class ReferencePath:
    """A path of piecewise-constant curvature: `segments` = [(length, curvature)], + = left turn."""

    def __init__(self, segments: list[tuple[float, float]], origin=(0.0, 0.0), heading: float = 0.0):
        self.segments = segments
        self.length = sum(length for length, _ in segments)
        self._starts = []  # (s0, x0, y0, heading0) of each segment
        s, x, y, h = 0.0, float(origin[0]), float(origin[1]), heading
        for length, k in segments:
            self._starts.append((s, x, y, h))
            x, y, h = self._advance(x, y, h, k, length)
            s += length

    @staticmethod
    def _advance(x: float, y: float, h: float, k: float, ds: float) -> tuple[float, float, float]:
        if abs(k) < 1e-12:
            return x + ds * math.cos(h), y + ds * math.sin(h), h
        h1 = h + k * ds
        return x + (math.sin(h1) - math.sin(h)) / k, y - (math.cos(h1) - math.cos(h)) / k, h1

    def pose(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at arc length s of the reference line (extrapolated past either end)."""
        j = 0
        for idx, start in enumerate(self._starts):
            if s >= start[0]:
                j = idx
        s0, x, y, h = self._starts[j]
        return self._advance(x, y, h, self.segments[j][1], s - s0)

    def offset(self, d: float, step: float = SAMPLE_STEP) -> np.ndarray:
        """Points [P, 2] of the curve at lateral offset d (+ = left): segment ends, plus every `step`
        metres along curved segments."""
        samples = [0.0]
        for (s0, *_), (length, k) in zip(self._starts, self.segments):
            n = 1 if abs(k) < 1e-12 else max(2, math.ceil(length / step))
            samples += list(s0 + np.linspace(0.0, length, n + 1)[1:])
        out = []
        for s in samples:
            x, y, h = self.pose(float(s))
            out.append((x - d * math.sin(h), y + d * math.cos(h)))
        return np.asarray(out)


def _bezier(p0, h0: float, p1, h1: float, step: float = 1.0) -> np.ndarray:
    """Cubic Bézier [P, 2] leaving p0 with heading h0 and arriving at p1 with heading h1, close to a
    circular arc for symmetric turns."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    chord = float(np.linalg.norm(p1 - p0))
    turn = (h1 - h0 + math.pi) % (2 * math.pi) - math.pi
    if abs(turn) < 1e-3:
        k = chord / 3
    else:
        radius = chord / (2 * abs(math.sin(turn / 2)))
        k = 4 / 3 * math.tan(abs(turn) / 4) * radius
    c0 = p0 + k * np.array([math.cos(h0), math.sin(h0)])
    c1 = p1 - k * np.array([math.cos(h1), math.sin(h1)])
    n = max(3, math.ceil(chord * (1 + abs(turn)) / step) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * p1


def _road(
    ref: ReferencePath,
    lanes_forward: int,
    lanes_backward: int,
    lane_width: float,
    speed_limit: float,
    lane_type: str = "surface_street",
    prefix: str = "",
) -> tuple[list[LaneSpec], list[RoadLineSpec], list[RoadEdgeSpec]]:
    """Lanes, lines and edges of a road along `ref`; the dividing line is the reference itself."""
    lanes = []
    for i in range(lanes_forward):
        d = -(lanes_forward - i - 0.5) * lane_width
        lanes.append(
            LaneSpec(
                id=f"{prefix}f{i}",
                centerline=_pts(ref.offset(d)),
                width=lane_width,
                left_neighbors=[f"{prefix}f{i + 1}"] if i + 1 < lanes_forward else [],
                right_neighbors=[f"{prefix}f{i - 1}"] if i > 0 else [],
                speed_limit=speed_limit,
                type=lane_type,
            )
        )
    for i in range(lanes_backward):
        d = (lanes_backward - i - 0.5) * lane_width
        lanes.append(
            LaneSpec(
                id=f"{prefix}b{i}",
                centerline=_pts(ref.offset(d)[::-1]),
                width=lane_width,
                left_neighbors=[f"{prefix}b{i + 1}"] if i + 1 < lanes_backward else [],
                right_neighbors=[f"{prefix}b{i - 1}"] if i > 0 else [],
                speed_limit=speed_limit,
                type=lane_type,
            )
        )
    lines = []
    for i in range(1, lanes_forward):
        lines.append(RoadLineSpec(id=f"{prefix}line_f{i}", polyline=_pts(ref.offset(-i * lane_width))))
    for i in range(1, lanes_backward):
        lines.append(RoadLineSpec(id=f"{prefix}line_b{i}", polyline=_pts(ref.offset(i * lane_width)[::-1])))
    if lanes_forward and lanes_backward:
        lines.append(
            RoadLineSpec(id=f"{prefix}centre", type="solid_double_yellow", polyline=_pts(ref.offset(0.0)))
        )
    edges = [
        RoadEdgeSpec(id=f"{prefix}edge_right", polyline=_pts(ref.offset(-lanes_forward * lane_width))),
        RoadEdgeSpec(
            id=f"{prefix}edge_left",
            type="boundary" if lanes_backward else "median",
            polyline=_pts(ref.offset(lanes_backward * lane_width)),
        ),
    ]
    return lanes, lines, edges


def straight_road(
    length: float = 200.0,
    lanes_forward: int = 2,
    lanes_backward: int = 1,
    lane_width: float = 3.5,
    speed_limit: float = 13.9,
    origin: tuple[float, float] = (0.0, 0.0),
    heading: float = 0.0,
    lane_type: str = "surface_street",
) -> MapSpec:
    """A straight road from `origin` along `heading`; lanes f0.. forward, b0.. backward."""
    ref = ReferencePath([(length, 0.0)], origin, heading)
    lanes, lines, edges = _road(ref, lanes_forward, lanes_backward, lane_width, speed_limit, lane_type)
    return MapSpec(name="straight_road", lanes=lanes, road_lines=lines, road_edges=edges)


def curved_road(
    radius: float = 60.0,
    angle: float = math.pi / 2,
    lead_in: float = 40.0,
    lead_out: float = 40.0,
    lanes_forward: int = 2,
    lanes_backward: int = 1,
    lane_width: float = 3.5,
    speed_limit: float = 13.9,
) -> MapSpec:
    """Straight lead-in, an arc of `radius` turning `angle` (+ left) about the dividing line, lead-out."""
    if radius <= (max(lanes_forward, lanes_backward) + 0.5) * lane_width:
        raise ValueError("radius too small for the road width")
    k = math.copysign(1.0 / radius, angle)
    ref = ReferencePath([(lead_in, 0.0), (radius * abs(angle), k), (lead_out, 0.0)])
    lanes, lines, edges = _road(ref, lanes_forward, lanes_backward, lane_width, speed_limit)
    return MapSpec(name="curved_road", lanes=lanes, road_lines=lines, road_edges=edges)


def junction(
    arm_angles_deg: tuple[int, ...] = (0, 90, 180, 270),
    lanes_per_direction: int = 1,
    lane_width: float = 3.5,
    arm_length: float = 80.0,
    corner_radius: float = 6.0,
    speed_limit: float = 11.1,
    crosswalks: bool = True,
) -> MapSpec:
    """A junction at the origin whose arms leave at the given compass angles (multiples of 90°), with
    straight, left and right connectors, stop lines and crosswalks."""
    n, w = lanes_per_direction, lane_width
    half = n * w + corner_radius  # distance from the centre to where each arm starts
    lanes: dict[str, LaneSpec] = {}
    lines, edges, walks, stops = [], [], [], []
    frames = {}
    for deg in arm_angles_deg:
        arm = ARM_NAMES.get(deg % 360, f"arm{deg}")
        phi = math.radians(deg)
        u, nrm = np.array([math.cos(phi), math.sin(phi)]), np.array([-math.sin(phi), math.cos(phi)])
        frames[deg % 360] = (arm, phi, u, nrm)
        for i in range(n):
            d_out, d_in = -(n - i - 0.5) * w, (n - i - 0.5) * w
            out_pts = np.array([half * u + d_out * nrm, (half + arm_length) * u + d_out * nrm])
            in_pts = np.array([(half + arm_length) * u + d_in * nrm, half * u + d_in * nrm])
            common = {"width": w, "speed_limit": speed_limit}
            lanes[f"{arm}_out_{i}"] = LaneSpec(
                id=f"{arm}_out_{i}",
                centerline=_pts(_densify(out_pts)),
                left_neighbors=[f"{arm}_out_{i + 1}"] if i + 1 < n else [],
                right_neighbors=[f"{arm}_out_{i - 1}"] if i > 0 else [],
                **common,
            )
            lanes[f"{arm}_in_{i}"] = LaneSpec(
                id=f"{arm}_in_{i}",
                centerline=_pts(_densify(in_pts)),
                left_neighbors=[f"{arm}_in_{i + 1}"] if i + 1 < n else [],
                right_neighbors=[f"{arm}_in_{i - 1}"] if i > 0 else [],
                **common,
            )
        a, b = half * u, (half + arm_length) * u
        lines.append(RoadLineSpec(id=f"{arm}_centre", type="solid_double_yellow", polyline=_pts([a, b])))
        for i in range(1, n):
            for side, sign in (("in", 1), ("out", -1)):
                off = sign * i * w * nrm
                lines.append(RoadLineSpec(id=f"{arm}_line_{side}{i}", polyline=_pts([a + off, b + off])))
        edges.append(RoadEdgeSpec(id=f"{arm}_edge_in", polyline=_pts([b + n * w * nrm, a + n * w * nrm])))
        edges.append(RoadEdgeSpec(id=f"{arm}_edge_out", polyline=_pts([a - n * w * nrm, b - n * w * nrm])))
        stop_at = half + (4.5 if crosswalks else 0.5)
        stops.append(
            StopLineSpec(
                id=f"{arm}_stop",
                polyline=_pts([stop_at * u, stop_at * u + n * w * nrm]),
                lanes=[f"{arm}_in_{i}" for i in range(n)],
            )
        )
        if crosswalks:
            c0, c1 = half + 0.5, half + 4.0
            ring = [c0 * u - n * w * nrm, c1 * u - n * w * nrm, c1 * u + n * w * nrm, c0 * u + n * w * nrm]
            walks.append(CrosswalkSpec(id=f"{arm}_crosswalk", polygon=_pts(ring)))

    turns = {"straight": 180, "right": 90, "left": 270}  # exit arm angle relative to the entry arm
    for deg, (arm, phi, _, _) in frames.items():
        for kind, rel in turns.items():
            target = (deg + rel) % 360
            if target not in frames:
                continue
            tarm, tphi, _, _ = frames[target]
            pairs = {"straight": range(n), "right": [0], "left": [n - 1]}[kind]
            for i in pairs:
                start = lanes[f"{arm}_in_{i}"].centerline[-1]
                end = lanes[f"{tarm}_out_{i}"].centerline[0]
                cid = f"{arm}_{kind}_{i}"
                lanes[cid] = LaneSpec(
                    id=cid,
                    centerline=_pts(_bezier(start, phi + math.pi, end, tphi)),
                    width=w,
                    speed_limit=speed_limit if kind == "straight" else min(speed_limit, 8.3),
                    predecessors=[f"{arm}_in_{i}"],
                    successors=[f"{tarm}_out_{i}"],
                )
                lanes[f"{arm}_in_{i}"].successors.append(cid)
                lanes[f"{tarm}_out_{i}"].predecessors.append(cid)
    # kerb corners between neighbouring arms (counter-clockwise)
    degs = sorted(frames)
    for k, deg in enumerate(degs):
        nxt = degs[(k + 1) % len(degs)]
        if (nxt - deg) % 360 != 90:
            continue
        _, phi, u, nrm = frames[deg]
        _, tphi, tu, tnrm = frames[nxt]
        p0, p1 = half * u + n * w * nrm, half * tu - n * w * tnrm
        edges.append(
            RoadEdgeSpec(id=f"corner_{deg}_{nxt}", polyline=_pts(_bezier(p0, phi + math.pi, p1, tphi)))
        )
    # a missing arm leaves a straight kerb across the junction
    for deg in range(0, 360, 90):
        if deg in frames:
            continue
        phi = math.radians(deg)
        u, nrm = np.array([math.cos(phi), math.sin(phi)]), np.array([-math.sin(phi), math.cos(phi)])
        edge = [n * w * u - half * nrm, n * w * u + half * nrm]  # along the through lanes' outer edge
        edges.append(RoadEdgeSpec(id=f"kerb_{deg}", polyline=_pts(edge)))
    name = "four_way_intersection" if len(frames) == 4 else "t_junction" if len(frames) == 3 else "junction"
    return MapSpec(
        name=name,
        lanes=list(lanes.values()),
        road_lines=lines,
        road_edges=edges,
        crosswalks=walks,
        stop_lines=stops,
    )


def _densify(points: np.ndarray, step: float = SAMPLE_STEP * 5) -> np.ndarray:
    """Straight segment [2, 2] -> points every `step` metres."""
    length = float(np.linalg.norm(points[1] - points[0]))
    t = np.linspace(0.0, 1.0, max(2, math.ceil(length / step) + 1))[:, None]
    return points[0] + t * (points[1] - points[0])


def four_way_intersection(
    lanes_per_direction: int = 1,
    lane_width: float = 3.5,
    arm_length: float = 80.0,
    corner_radius: float = 6.0,
) -> MapSpec:
    """A 4-way intersection at the origin with arms east, north, west and south."""
    return junction((0, 90, 180, 270), lanes_per_direction, lane_width, arm_length, corner_radius)


def t_junction(
    lanes_per_direction: int = 1,
    lane_width: float = 3.5,
    arm_length: float = 80.0,
    corner_radius: float = 6.0,
) -> MapSpec:
    """A T-junction at the origin: main road east-west, a stem to the south."""
    return junction((0, 180, 270), lanes_per_direction, lane_width, arm_length, corner_radius)


def on_ramp_merge(
    main_lanes: int = 2,
    lane_width: float = 3.75,
    length: float = 400.0,
    merge_start: float = 150.0,
    merge_length: float = 120.0,
    taper: float = 40.0,
    ramp_length: float = 100.0,
    ramp_angle: float = math.radians(10),
    speed_limit: float = 27.8,
    ramp_speed_limit: float = 16.7,
) -> MapSpec:
    """A one-way highway along +x (lanes f0.. split into segments `_a`, `_b`, `_c` around the merge) and an
    on-ramp from the right: `ramp` -> acceleration lane `acc` (beside f0_b) -> tapers into `f0_c`."""
    n, w = main_lanes, lane_width
    xa, xb = merge_start, merge_start + merge_length
    y = [-(n - i - 0.5) * w for i in range(n)]
    y_acc = -(n + 0.5) * w
    lanes: list[LaneSpec] = []
    for i in range(n):
        for seg, (x0, x1) in {"a": (0.0, xa), "b": (xa, xb), "c": (xb, length)}.items():
            prev = {"a": None, "b": "a", "c": "b"}[seg]
            nxt = {"a": "b", "b": "c", "c": None}[seg]
            right = [f"f{i - 1}_{seg}"] if i > 0 else (["acc"] if seg == "b" else [])
            lanes.append(
                LaneSpec(
                    id=f"f{i}_{seg}",
                    centerline=_pts(_densify(np.array([[x0, y[i]], [x1, y[i]]]))),
                    width=w,
                    speed_limit=speed_limit,
                    type="freeway",
                    predecessors=[f"f{i}_{prev}"] if prev else [],
                    successors=[f"f{i}_{nxt}"] if nxt else [],
                    left_neighbors=[f"f{i + 1}_{seg}"] if i + 1 < n else [],
                    right_neighbors=right,
                )
            )
    acc_pts = np.concatenate(
        [
            _densify(np.array([[xa, y_acc], [xb - taper, y_acc]])),
            _bezier((xb - taper, y_acc), 0.0, (xb, y[0]), 0.0)[1:],
        ]
    )
    ramp_start = (xa - ramp_length * math.cos(ramp_angle), y_acc - ramp_length * math.sin(ramp_angle))
    ramp_pts = _bezier(ramp_start, ramp_angle, (xa, y_acc), 0.0, step=SAMPLE_STEP)
    lanes.append(
        LaneSpec(
            id="ramp",
            centerline=_pts(ramp_pts),
            width=w,
            speed_limit=ramp_speed_limit,
            type="freeway",
            successors=["acc"],
        )
    )
    lanes.append(
        LaneSpec(
            id="acc",
            centerline=_pts(acc_pts),
            width=w,
            speed_limit=speed_limit,
            type="freeway",
            predecessors=["ramp"],
            successors=["f0_c"],
            left_neighbors=["f0_b"],
        )
    )
    next(lane for lane in lanes if lane.id == "f0_c").predecessors.append("acc")
    lines = [
        RoadLineSpec(id=f"line_{i}", polyline=_pts([[0.0, -i * w], [length, -i * w]])) for i in range(1, n)
    ]
    lines.append(RoadLineSpec(id="line_acc", polyline=_pts([[xa, -n * w], [xb - taper, -n * w]])))
    ramp_ref = np.concatenate([ramp_pts, acc_pts[1:]])
    tangent = np.gradient(ramp_ref, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    right_edge = ramp_ref + (w / 2) * np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    edges = [
        RoadEdgeSpec(id="median", type="median", polyline=_pts([[0.0, 0.0], [length, 0.0]])),
        RoadEdgeSpec(id="edge_main_a", polyline=_pts([[0.0, -n * w], [xa, -n * w]])),
        RoadEdgeSpec(id="edge_main_c", polyline=_pts([[xb, -n * w], [length, -n * w]])),
        RoadEdgeSpec(id="edge_ramp", polyline=_pts(right_edge)),
    ]
    return MapSpec(name="on_ramp_merge", lanes=lanes, road_lines=lines, road_edges=edges)


MAP_KINDS = ("straight_road", "curved_road", "four_way_intersection", "t_junction", "on_ramp_merge")


def random_map(seed: int, kind: str | None = None) -> MapSpec:
    """A procedural map with parameters drawn from realistic ranges by `seed` (kind drawn too unless given)."""
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(MAP_KINDS))
    width = float(rng.uniform(3.0, 3.9))
    if kind == "straight_road":
        return straight_road(
            float(rng.uniform(120, 400)), int(rng.integers(1, 4)), int(rng.integers(0, 3)), width
        )
    if kind == "curved_road":
        angle = float(rng.uniform(0.3, 1.8)) * float(rng.choice([-1, 1]))
        return curved_road(
            float(rng.uniform(30, 200)), angle, lanes_forward=int(rng.integers(1, 3)), lane_width=width
        )
    if kind == "four_way_intersection":
        return four_way_intersection(int(rng.integers(1, 3)), width, float(rng.uniform(50, 120)))
    if kind == "t_junction":
        return t_junction(int(rng.integers(1, 3)), width, float(rng.uniform(50, 120)))
    if kind == "on_ramp_merge":
        return on_ramp_merge(int(rng.integers(1, 4)), width, merge_length=float(rng.uniform(80, 160)))
    raise ValueError(f"unknown map kind {kind!r}; known: {', '.join(MAP_KINDS)}")
