"""Layout images: what conditions the world model, drawn per camera.

`draw_layout` -> float32 tensor [V, 6, H, W] in [0, 1], channels `LAYOUT_CHANNELS`:
  0-2  3D boxes as wireframes in their category colour (RGB / 255), with a heading mark (the diagonals of
       the front face); nearer boxes win where wireframes cross
  3    lane dividers          (map type 0)
  4    crosswalk outlines     (map type 1)
  5    road edges / drivable-area boundary (map type 2)
Map types follow `cvd_sim.data.map_polylines.MAP_TYPES`; lane centrelines (type 3) are not drawn. Map
segments are kept up to `max_distance` (65 m) from the ego, cut exactly at that circle.

Everything is vectorised over segments and views: segments are clipped against the near plane in camera
space (before the perspective divide, so nothing wraps around), projected, clipped to the image rectangle,
then sampled at one-pixel steps and scattered into the image.
"""

from __future__ import annotations

import numpy as np
import shapely
import torch

from cvd_sim.geometry.boxes import BOX_EDGES, box_corners_3d
from cvd_sim.geometry.projection import project_segments
from cvd_sim.geometry.transforms import apply_transform, invert_pose
from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import MapSpec

LAYOUT_CHANNELS = ("box_r", "box_g", "box_b", "divider", "crosswalk", "boundary")
MAP_DIVIDER, MAP_CROSSWALK, MAP_BOUNDARY = 0, 1, 2
MAP_CHANNEL = {MAP_DIVIDER: 3, MAP_CROSSWALK: 4, MAP_BOUNDARY: 5}
MAX_DISTANCE = 65.0
NEAR_PLANE = 0.1
# heading mark: the two diagonals of the front face (corners 0, 1 bottom front; 4, 5 top front)
_HEADING_EDGES = np.array([[0, 5], [1, 4]])
_BOX_SEGMENTS = np.concatenate([BOX_EDGES, _HEADING_EDGES])
_CATEGORY_RGB = np.array([c.color_rgb for c in CATEGORIES], dtype=np.float32) / 255.0


def box_segments(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wireframe + heading-mark segments of boxes [N, 7]: (starts [N * 14, 3], ends [N * 14, 3])."""
    corners = box_corners_3d(boxes)  # [N, 8, 3]
    return corners[:, _BOX_SEGMENTS[:, 0]].reshape(-1, 3), corners[:, _BOX_SEGMENTS[:, 1]].reshape(-1, 3)


def polyline_segments(polylines: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded polylines [M, P, 3] with types [M] (-1 = padding; the clip-dict format) -> segments
    (starts [S, 3], ends [S, 3], types [S]) of the drawn types (0, 1, 2)."""
    polylines = np.asarray(polylines, dtype=np.float64)
    types = np.asarray(types)
    keep = np.isin(types, list(MAP_CHANNEL))
    lines, kinds = polylines[keep], types[keep]
    starts, ends = lines[:, :-1].reshape(-1, 3), lines[:, 1:].reshape(-1, 3)
    seg_types = np.repeat(kinds, polylines.shape[1] - 1)
    moving = np.linalg.norm(ends - starts, axis=1) > 1e-6  # drop zero-length (padding) segments
    return starts[moving], ends[moving], seg_types[moving]


def map_segments(spec: MapSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-frame segments of a scenario map: road lines (dividers), crosswalk outlines, road edges (or the
    drivable-area boundary when the map has no road edges). Returns (starts [S, 3], ends [S, 3], types [S])."""
    lines: list[tuple[np.ndarray, int]] = [(np.asarray(r.polyline), MAP_DIVIDER) for r in spec.road_lines]
    for c in spec.crosswalks:
        ring = np.asarray(c.polygon)
        lines.append((np.concatenate([ring, ring[:1]]), MAP_CROSSWALK))
    if spec.road_edges:
        lines += [(np.asarray(e.polyline), MAP_BOUNDARY) for e in spec.road_edges]
    else:
        boundary = shapely.get_parts(road_map(spec).drivable_area.boundary)
        lines += [(np.asarray(part.coords)[:, :2], MAP_BOUNDARY) for part in boundary]
    starts, ends, types = [], [], []
    for points, kind in lines:
        pts = np.concatenate([points, np.zeros((len(points), 1))], axis=1)
        starts.append(pts[:-1])
        ends.append(pts[1:])
        types.append(np.full(len(pts) - 1, kind))
    if not starts:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(types).astype(np.int64)


def clip_segments_to_disc(
    starts: np.ndarray, ends: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments [S, 3] to the part whose xy lies within `radius` of the origin -> (starts, ends, keep [S])."""
    p, d = starts[:, :2], (ends - starts)[:, :2]
    a = np.einsum("ij,ij->i", d, d)
    b = 2.0 * np.einsum("ij,ij->i", p, d)
    c = np.einsum("ij,ij->i", p, p) - radius**2
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    safe_a = np.where(a > 0, a, 1.0)
    t0 = np.clip((-b - root) / (2 * safe_a), 0.0, 1.0)
    t1 = np.clip((-b + root) / (2 * safe_a), 0.0, 1.0)
    inside_point = (a == 0) & (c <= 0)
    t0, t1 = np.where(a > 0, t0, 0.0), np.where(a > 0, t1, 1.0)
    keep = ((disc > 0) & (t1 > t0)) | inside_point
    seg = ends - starts
    return starts + t0[:, None] * seg, starts + t1[:, None] * seg, keep


def clip_segments_to_rect(
    uv0: np.ndarray, uv1: np.ndarray, width: float, height: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Liang-Barsky clip of 2D segments [..., 2] to [0, width] x [0, height] -> (uv0', uv1', keep [...])."""
    d = uv1 - uv0
    t0 = np.zeros(uv0.shape[:-1])
    t1 = np.ones(uv0.shape[:-1])
    keep = np.all(np.isfinite(uv0) & np.isfinite(uv1), axis=-1)
    for p, q in (
        (-d[..., 0], uv0[..., 0]),
        (d[..., 0], width - uv0[..., 0]),
        (-d[..., 1], uv0[..., 1]),
        (d[..., 1], height - uv0[..., 1]),
    ):
        parallel = p == 0
        keep &= ~(parallel & (q < 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(parallel, 0.0, q / np.where(parallel, 1.0, p))
        t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
        t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
    keep &= t0 <= t1
    return uv0 + t0[..., None] * d, uv0 + t1[..., None] * d, keep


def rasterize_segments(
    uv0: np.ndarray, uv1: np.ndarray, height: int, width: int, thickness: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of 2D segments [S, 2] (already inside the image), sampled every pixel along the major axis and
    widened to `thickness` px across it -> (segment index [P], row [P], col [P]), all in bounds."""
    delta = uv1 - uv0
    length = np.ceil(np.abs(delta).max(axis=1)).astype(np.int64) + 1
    seg = np.repeat(np.arange(len(uv0)), length)
    first = np.repeat(np.cumsum(length) - length, length)
    t = (np.arange(len(seg)) - first) / np.maximum(np.repeat(length, length) - 1, 1)
    pts = uv0[seg] + t[:, None] * delta[seg]
    # widen across the major axis: rows for mostly horizontal segments, columns for mostly vertical ones
    across = (np.abs(delta[:, 1]) <= np.abs(delta[:, 0])).astype(np.int64)[seg]  # 1 = shift the row
    offsets = np.arange(thickness) - (thickness - 1) / 2.0
    shift = np.zeros((len(seg), thickness, 2))
    shift[np.arange(len(seg)), :, 1 - across] = offsets  # column index 0 = u, 1 = v
    samples = pts[:, None, :] + shift
    cols = np.floor(samples[..., 0]).astype(np.int64).reshape(-1)
    rows = np.floor(samples[..., 1]).astype(np.int64).reshape(-1)
    seg = np.repeat(seg, thickness)
    ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return seg[ok], rows[ok], cols[ok]


def draw_layout(
    boxes: np.ndarray,
    categories: np.ndarray,
    map_starts: np.ndarray,
    map_ends: np.ndarray,
    map_types: np.ndarray,
    intrinsics: np.ndarray,
    cam_to_ego: np.ndarray,
    height: int,
    width: int,
    max_distance: float = MAX_DISTANCE,
    thickness: int = 2,
) -> torch.Tensor:
    """Layout images [V, 6, H, W] float32 in [0, 1] (channels `LAYOUT_CHANNELS`).

    boxes [N, 7] ego frame with categories [N] (ids < 0 skipped); map segments starts/ends [S, 3] ego frame
    with types [S]; intrinsics [V, 3, 3] for (height, width); cam_to_ego [V, 4, 4] (OpenCV camera).
    """
    num_views = len(intrinsics)
    image = np.zeros((num_views, len(LAYOUT_CHANNELS), height, width), dtype=np.float32)
    ego_to_cam = invert_pose(np.asarray(cam_to_ego, dtype=np.float64))
    intrinsics = np.asarray(intrinsics, dtype=np.float64)

    # map: cut to the disc, one binary channel per type
    if len(map_starts):
        s, e, keep = clip_segments_to_disc(
            np.asarray(map_starts, np.float64), np.asarray(map_ends, np.float64), max_distance
        )
        s, e, types = s[keep], e[keep], np.asarray(map_types)[keep]
        view, seg, rows, cols = _project_and_rasterize(s, e, ego_to_cam, intrinsics, height, width, thickness)
        channel = np.array([MAP_CHANNEL.get(int(t), -1) for t in range(3)])[types[seg]]
        image[view, channel, rows, cols] = 1.0

    # boxes: class-coloured wireframes, the nearest box wins each pixel
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    categories = np.asarray(categories).reshape(-1)
    valid = categories >= 0
    if valid.any():
        s, e = box_segments(boxes[valid])
        colour = np.repeat(_CATEGORY_RGB[categories[valid]], len(_BOX_SEGMENTS), axis=0)
        # samples come out nearest segment first; each pixel keeps its first (nearest) sample
        view, seg, rows, cols = _project_and_rasterize(
            s, e, ego_to_cam, intrinsics, height, width, thickness, near_first=True
        )
        flat = (view * height + rows) * width + cols
        order = np.argsort(flat, kind="stable")  # stable: equal pixels stay nearest first
        sorted_flat = flat[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_flat[1:] != sorted_flat[:-1]
        pick = order[first]
        image[view[pick], :3, rows[pick], cols[pick]] = colour[seg[pick]]
    return torch.from_numpy(image)


def _project_and_rasterize(starts, ends, ego_to_cam, intrinsics, height, width, thickness, near_first=False):
    """Segments [S, 3] (ego) into every view -> pixel lists (view [P], segment [P], row [P], col [P]);
    with near_first the (view, segment) pairs are ordered by increasing mid-segment depth."""
    uv0, uv1, depth, keep = project_segments(starts, ends, ego_to_cam, intrinsics, NEAR_PLANE)
    uv0, uv1, inside = clip_segments_to_rect(uv0, uv1, float(width), float(height))
    view_idx, seg_idx = np.nonzero(keep & inside)
    if near_first:
        order = np.argsort(depth[view_idx, seg_idx], kind="stable")
        view_idx, seg_idx = view_idx[order], seg_idx[order]
    seg, rows, cols = rasterize_segments(
        uv0[view_idx, seg_idx], uv1[view_idx, seg_idx], height, width, thickness
    )
    return view_idx[seg], seg_idx[seg], rows, cols


class LayoutPainter:
    """Layout images of a scenario map seen from a rig, frame after frame (the map segments are built once)."""

    def __init__(
        self, spec: MapSpec, intrinsics: np.ndarray, cam_to_ego: np.ndarray, height: int, width: int
    ):
        self.starts, self.ends, self.types = map_segments(spec)
        self.intrinsics, self.cam_to_ego = intrinsics, cam_to_ego
        self.height, self.width = height, width

    def __call__(
        self, boxes_ego: np.ndarray, categories: np.ndarray, world_to_ego: np.ndarray
    ) -> torch.Tensor:
        """[V, 6, H, W] for boxes [N, 7] and categories [N] in the ego frame, ego pose world_to_ego [4, 4]."""
        starts = apply_transform(world_to_ego, self.starts)
        ends = apply_transform(world_to_ego, self.ends)
        return draw_layout(
            boxes_ego,
            categories,
            starts,
            ends,
            self.types,
            self.intrinsics,
            self.cam_to_ego,
            self.height,
            self.width,
        )


def layout_for_clip(
    boxes,
    box_categories,
    map_polylines,
    map_types,
    ego_to_world,
    intrinsics,
    cam_to_ego,
    height: int,
    width: int,
) -> torch.Tensor:
    """Layout images of one clip (the clip-dict fields, numpy or torch) -> [T, V, 6, H, W] float32.

    boxes [T, N, 7] ego frame, box_categories [T, N] (-1 = padding), map_polylines [M, P, 3] world frame,
    map_types [M] (-1 = padding), ego_to_world [T, 4, 4], intrinsics [T, V, 3, 3] for (height, width),
    cam_to_ego [T, V, 4, 4].
    """

    def np64(x):
        return (
            x.detach().cpu().numpy().astype(np.float64)
            if isinstance(x, torch.Tensor)
            else np.asarray(x, np.float64)
        )

    def npint(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    starts, ends, types = polyline_segments(np64(map_polylines), npint(map_types))
    boxes, cats, poses = np64(boxes), npint(box_categories).astype(np.int64), np64(ego_to_world)
    ks, cams = np64(intrinsics), np64(cam_to_ego)
    frames = []
    for t in range(len(poses)):
        world_to_ego = np.linalg.inv(poses[t])
        frames.append(
            draw_layout(
                boxes[t],
                cats[t],
                apply_transform(world_to_ego, starts),
                apply_transform(world_to_ego, ends),
                types,
                ks[t],
                cams[t],
                height,
                width,
            )
        )
    return torch.stack(frames)


# colours of the map channels when a layout is shown as a picture
_MAP_VIEW_RGB = np.array([[255, 255, 255], [0, 200, 120], [230, 60, 60]], dtype=np.float32) / 255.0


def layout_to_rgb(layout: torch.Tensor) -> np.ndarray:
    """Layout images [V, 6, H, W] -> viewable uint8 [V, H, W, 3]: map channels coloured (dividers white,
    crosswalks green, edges red), boxes on top in their own colours."""
    arr = layout.detach().cpu().numpy()
    rgb = np.einsum("vchw,ck->vhwk", arr[:, 3:6], _MAP_VIEW_RGB)
    boxes = np.moveaxis(arr[:, :3], 1, -1)
    has_box = boxes.sum(-1, keepdims=True) > 0
    rgb = np.where(has_box, boxes, np.clip(rgb, 0.0, 1.0))
    return (rgb * 255.0 + 0.5).astype(np.uint8)
