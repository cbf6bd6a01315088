"""Who is ahead on a path: leaders for car following, and crosswalks to stop at.

Used by IDM traffic and by the ego autopilot. Every road user's footprint is projected onto the follower's
path (a `Polyline2D` from the map queries): it blocks the path when its lateral extent overlaps the follower's
lane corridor, and the leader is the nearest blocking one ahead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from cvd_sim.scenarios.map_queries import Polyline2D

LOOKAHEAD = 80.0  # m searched ahead for a leader
LATERAL_MARGIN = 0.3  # m added to the corridor half-width
CROSSWALK_MARGIN = 1.0  # m around a crosswalk in which a pedestrian counts as crossing


@dataclass(frozen=True)
class RoadUsers:
    """Everyone on the road at one instant (world frame): xy [M, 2], yaw [M], speed [M], lwh [M, 3],
    category [M]. Used read-only while followers pick their leaders."""

    xy: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    lwh: np.ndarray
    category: np.ndarray


def local_frenet(path: Polyline2D, xy: np.ndarray, s_lo: float, s_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Fast projection of points [N, 2] onto the part of `path` between arc lengths s_lo and s_hi:
    (s [N], d [N]) of the nearest foot point on those segments (the path's own ends extend straight on).
    Points far from that stretch land on its ends with a large |d|, which is all a leader search needs."""
    cum, n_seg = path.cum, len(path.seg_len)
    i0 = int(np.clip(np.searchsorted(cum, s_lo, side="right") - 1, 0, n_seg - 1))
    i1 = int(np.clip(np.searchsorted(cum, s_hi, side="left"), i0 + 1, n_seg))
    start, unit, seg_len = path.points[i0:i1], path.unit[i0:i1], path.seg_len[i0:i1]
    lo = np.zeros(i1 - i0)
    hi = seg_len.copy()
    if i0 == 0:
        lo[0] = -np.inf
    if i1 == n_seg:
        hi[-1] = np.inf
    rel = xy[:, None, :] - start[None]  # [N, S', 2]
    t = np.clip(np.einsum("nsk,sk->ns", rel, unit), lo, hi)
    off = rel - t[..., None] * unit[None]
    k = np.argmin(np.einsum("nsk,nsk->ns", off, off), axis=1)
    rows = np.arange(len(xy))
    d = unit[k, 0] * off[rows, k, 1] - unit[k, 1] * off[rows, k, 0]
    return cum[i0 + k] + t[rows, k], d


def find_leader(
    path: Polyline2D,
    s_self: float,
    half_length: float,
    half_width: float,
    users: RoadUsers,
    exclude: int,
) -> tuple[float, float]:
    """(gap m, leader speed along the path m/s) of the nearest road user ahead, or (inf, 0).

    s_self: arc length of the follower's centre on `path`; gap = bumper to bumper along the path.
    exclude: index of the follower in `users` (-1 for none).
    """
    # only road users within reach can lead: skip projecting the others onto the path
    here = path.xy(s_self)
    reach = LOOKAHEAD + half_length + 2.0 * float(users.lwh[:, 0].max(initial=0.0))
    near = np.flatnonzero(np.hypot(*(users.xy - here).T) < reach)
    near = near[near != exclude]
    if len(near) == 0:
        return float("inf"), 0.0
    s, d = local_frenet(path, users.xy[near], s_self - 5.0, s_self + reach)
    rel_yaw = users.yaw[near] - path.heading(np.clip(s, 0.0, path.length))
    c, sn = np.abs(np.cos(rel_yaw)), np.abs(np.sin(rel_yaw))
    lwh = users.lwh[near]
    half_long = lwh[:, 0] / 2 * c + lwh[:, 1] / 2 * sn
    half_lat = lwh[:, 0] / 2 * sn + lwh[:, 1] / 2 * c
    gap = s - s_self - half_length - half_long
    blocking = (np.abs(d) < half_lat + half_width + LATERAL_MARGIN) & (s > s_self) & (gap < LOOKAHEAD)
    if not blocking.any():
        return float("inf"), 0.0
    idx = np.flatnonzero(blocking)
    k = idx[np.argmin(gap[idx])]
    return float(max(gap[k], 0.0)), float(max(users.speed[near[k]] * np.cos(rel_yaw[k]), 0.0))


def crosswalk_spans(path: Polyline2D, crosswalks: list) -> list[tuple[float, float, object]]:
    """(s_enter, s_exit, polygon) of each crosswalk polygon the path crosses, in path arc length."""
    line = shapely.LineString(path.points)
    spans = []
    for polygon in crosswalks:
        inter = line.intersection(polygon)
        if inter.is_empty:
            continue
        coords = np.concatenate([np.asarray(g.coords) for g in getattr(inter, "geoms", [inter])])
        s, _ = path.frenet(coords[:, :2])
        spans.append((float(s.min()), float(s.max()), polygon))
    return spans


def crosswalk_stop_gap(
    spans: list[tuple[float, float, object]],
    s_self: float,
    half_length: float,
    users: RoadUsers,
    pedestrian_ids,
) -> float:
    """Gap (m) to the entry of the nearest crosswalk ahead with a pedestrian on it (inf if none).

    A crosswalk whose entry the follower's front has already passed is ignored (it keeps going across).
    """
    if not spans:
        return float("inf")
    is_ped = np.isin(users.category, pedestrian_ids)
    if not is_ped.any():
        return float("inf")
    peds = shapely.points(users.xy[is_ped])
    best = float("inf")
    for s_in, _, polygon in spans:
        gap = s_in - (s_self + half_length)
        if gap < 0 or gap > LOOKAHEAD:
            continue
        if shapely.dwithin(polygon, peds, CROSSWALK_MARGIN).any():
            best = min(best, gap)
    return best
