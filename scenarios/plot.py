"""Bird's-eye-view plots of scenarios with matplotlib: map, agents, ego, routes and scripted paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from cvd_sim.scenarios.boxes import box_corners, ego_center
from cvd_sim.scenarios.categories import CATEGORIES, category_id
from cvd_sim.scenarios.map_queries import road_map
from cvd_sim.scenarios.schema import (
    ConstantVelocityBehavior,
    IdmBehavior,
    Scenario,
    TriggerBehavior,
    WaypointsBehavior,
)
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

ROAD_COLOR = "#5a5a5a"
EGO_COLOR = "#00a651"
_LINE_STYLE = {
    "broken": dict(linestyle=(0, (4, 4)), linewidth=1.0),
    "solid": dict(linestyle="-", linewidth=1.0),
    "double": dict(linestyle="-", linewidth=2.2),
    "passing": dict(linestyle=(0, (6, 2)), linewidth=2.2),
}


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in color)


def _fill_geometry(ax, geom, **kw) -> None:
    polys = getattr(geom, "geoms", [geom])
    for poly in polys:
        if poly.is_empty or not hasattr(poly, "exterior"):
            continue
        ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, **kw))
        for hole in poly.interiors:
            ax.add_patch(
                MplPolygon(np.asarray(hole.coords), closed=True, facecolor="white", edgecolor="none")
            )


def _draw_map(ax, sc: Scenario) -> None:
    rmap = road_map(sc.map)
    _fill_geometry(ax, rmap.drivable_area, facecolor=ROAD_COLOR, edgecolor="none", zorder=0)
    for cw in sc.map.crosswalks:
        ax.add_patch(
            MplPolygon(
                cw.polygon, closed=True, facecolor="none", edgecolor="white", hatch="///", lw=0.5, zorder=1
            )
        )
    for lane in rmap.lanes.values():
        pts = lane.points
        ax.plot(pts[:, 0], pts[:, 1], color="#9a9a9a", lw=0.5, ls=":", zorder=1)
        mid = lane.length / 2
        (x, y), h = lane.xy(mid), float(lane.heading(mid))
        ax.annotate(
            "",
            xy=(x + math.cos(h), y + math.sin(h)),
            xytext=(x, y),
            arrowprops=dict(arrowstyle="->", color="#b0b0b0", lw=0.6),
            zorder=1,
        )
    for line in sc.map.road_lines:
        pts = np.asarray(line.polyline)
        color = "#f2c200" if "yellow" in line.type else "white"
        style = _LINE_STYLE.get(line.type.split("_")[0], _LINE_STYLE["solid"])
        if "double" in line.type:
            style = _LINE_STYLE["passing" if line.type.startswith("passing") else "double"]
        ax.plot(pts[:, 0], pts[:, 1], color=color, zorder=2, **style)
    for edge in sc.map.road_edges:
        pts = np.asarray(edge.polyline)
        ax.plot(pts[:, 0], pts[:, 1], color="black", lw=1.4, zorder=2)
    for stop in sc.map.stop_lines:
        pts = np.asarray(stop.polyline)
        ax.plot(pts[:, 0], pts[:, 1], color="white", lw=2.5, zorder=2)


def _draw_box(ax, x, y, length, width, yaw, color, label: str | None) -> None:
    corners = box_corners(x, y, length, width, yaw)
    ax.add_patch(
        MplPolygon(corners, closed=True, facecolor=color, edgecolor="black", lw=0.6, alpha=0.9, zorder=5)
    )
    nose = (x + 0.5 * length * math.cos(yaw), y + 0.5 * length * math.sin(yaw))
    ax.plot([x, nose[0]], [y, nose[1]], color="black", lw=0.9, zorder=6)
    if label:
        ax.text(x, y + width / 2 + 0.8, label, fontsize=5, ha="center", va="bottom", zorder=7)


def _path_of(sc: Scenario, agent, behaviour) -> np.ndarray | None:
    if isinstance(behaviour, WaypointsBehavior):
        return np.array([[p.x, p.y] for p in behaviour.points])
    if isinstance(behaviour, IdmBehavior):
        return road_map(sc.map).route_path(behaviour.route)
    if isinstance(behaviour, ConstantVelocityBehavior):
        speed = agent.speed if behaviour.speed is None else behaviour.speed
        length = min(speed * sc.duration, 60.0)
        return np.array(
            [
                [agent.pose.x, agent.pose.y],
                [
                    agent.pose.x + length * math.cos(agent.pose.yaw),
                    agent.pose.y + length * math.sin(agent.pose.yaw),
                ],
            ]
        )
    return None


def plot_scenario(sc: Scenario, ax=None, labels: bool = True, margin: float = 10.0):
    """Draw the BEV of a scenario on `ax` (a new figure when None); returns the figure."""
    fig = None
    if ax is None:
        fig = Figure(figsize=(8, 8), dpi=150)
        ax = fig.add_subplot()
    _draw_map(ax, sc)
    rmap = road_map(sc.map)
    for agent in sc.agents:
        cat = CATEGORIES[category_id(agent.category)]
        color = _rgb(cat.color_rgb)
        behaviours = [agent.behavior]
        if isinstance(agent.behavior, TriggerBehavior):
            behaviours = [agent.behavior.before, agent.behavior.after]
        for beh in behaviours:
            path = _path_of(sc, agent, beh)
            if path is not None:
                ax.plot(path[:, 0], path[:, 1], color=color, lw=1.0, ls="--", zorder=4)
        length, width, _ = agent.dims
        label = f"{agent.id} ({agent.category})" if labels else None
        _draw_box(ax, agent.pose.x, agent.pose.y, length, width, agent.pose.yaw, color, label)
    ego = sc.ego
    if ego.route:
        path = rmap.route_path(ego.route)
        ax.plot(path[:, 0], path[:, 1], color=EGO_COLOR, lw=1.6, ls="--", zorder=4)
    if ego.goal is not None:
        ax.plot(*ego.goal, marker="*", color=EGO_COLOR, markersize=12, zorder=6)
    cx, cy = ego_center(ego)
    _draw_box(
        ax, cx, cy, ego.vehicle.length, ego.vehicle.width, ego.pose.yaw, EGO_COLOR, "ego" if labels else None
    )
    minx, miny, maxx, maxy = rmap.drivable_area.bounds
    ax.set_xlim(minx - margin, maxx + margin)
    ax.set_ylim(miny - margin, maxy + margin)
    ax.set_aspect("equal")
    ax.set_facecolor("#d8e8c8")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(f"{sc.name}: {sc.scene.text}", fontsize=7)
    return fig if fig is not None else ax.figure


def save_plot(sc: Scenario, path: str | Path, dpi: int = 150) -> Path:
    """Write the BEV plot of a scenario to an image file (format from the suffix)."""
    fig = plot_scenario(sc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
