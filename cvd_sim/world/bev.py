"""Bird's-eye-view frames of a running World (matplotlib, Agg): map, agents, ego, its trail and route.

The map is drawn once; per frame only the boxes, the trail and the view window move, so a frame costs one
canvas draw. Frames are uint8 `[H, W, 3]`, centred on the ego.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon

from cvd_sim.geometry.boxes import box_corners_bev
from cvd_sim.scenarios.categories import CATEGORIES
from cvd_sim.scenarios.schema import MapSpec

ROAD_COLOR = "#5a5a5a"
GRASS_COLOR = "#d8e8c8"
EGO_COLOR = "#00a651"


def _fill(ax, geom, **kw) -> None:
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty or not hasattr(poly, "exterior"):
            continue
        ax.add_patch(MplPolygon(np.asarray(poly.exterior.coords), closed=True, **kw))
        for hole in poly.interiors:
            ax.add_patch(
                MplPolygon(np.asarray(hole.coords), closed=True, facecolor=GRASS_COLOR, edgecolor="none")
            )


class BevRenderer:
    """Draws snapshots of one world: `renderer(snapshot, scores_text) -> [H, W, 3] uint8`."""

    def __init__(
        self, spec: MapSpec, drivable_area, route_path: np.ndarray, size_px: int = 512, view_m: float = 45.0
    ):
        self.view_m = view_m
        dpi = 100
        self.fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi, facecolor=GRASS_COLOR)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_axes((0, 0, 1, 1))
        ax.set_facecolor(GRASS_COLOR)
        ax.set_aspect("equal")
        ax.set_axis_off()
        _fill(ax, drivable_area, facecolor=ROAD_COLOR, edgecolor="none", zorder=0)
        for cw in spec.crosswalks:
            ax.add_patch(
                MplPolygon(cw.polygon, closed=True, facecolor="none", edgecolor="white", hatch="///", lw=0.5)
            )
        for line in spec.road_lines:
            pts = np.asarray(line.polyline)
            colour = "#f2c200" if "yellow" in line.type else "white"
            ax.plot(
                pts[:, 0],
                pts[:, 1],
                color=colour,
                lw=1.0,
                ls="--" if "broken" in line.type else "-",
                zorder=2,
            )
        for edge in spec.road_edges:
            pts = np.asarray(edge.polyline)
            ax.plot(pts[:, 0], pts[:, 1], color="black", lw=1.4, zorder=2)
        ax.plot(route_path[:, 0], route_path[:, 1], color=EGO_COLOR, lw=1.0, ls=":", zorder=3)
        self.ax = ax
        self.trail_xy: list[tuple[float, float]] = []
        (self.trail,) = ax.plot([], [], color=EGO_COLOR, lw=1.5, zorder=4)
        self.ego_patch = ax.add_patch(
            MplPolygon(
                np.zeros((4, 2)), closed=True, facecolor=EGO_COLOR, edgecolor="black", lw=0.8, zorder=6
            )
        )
        self.agent_patches: list[MplPolygon] = []
        self.text = ax.text(
            0.02,
            0.98,
            "",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7,
            color="white",
            family="monospace",
            bbox=dict(facecolor="black", alpha=0.5, lw=0),
            zorder=10,
        )

    def __call__(self, snapshot, caption: str = "") -> np.ndarray:
        corners = box_corners_bev(snapshot.boxes)
        while len(self.agent_patches) < len(corners):
            self.agent_patches.append(
                self.ax.add_patch(
                    MplPolygon(np.zeros((4, 2)), closed=True, edgecolor="black", lw=0.6, zorder=5)
                )
            )
        for patch, quad, cat in zip(self.agent_patches, corners, snapshot.categories):
            patch.set_xy(quad)
            patch.set_facecolor(np.array(CATEGORIES[int(cat)].color_rgb) / 255.0)
        self.ego_patch.set_xy(box_corners_bev(snapshot.ego_box))
        self.trail_xy.append((snapshot.ego.x, snapshot.ego.y))
        self.trail.set_data(*np.array(self.trail_xy).T)
        cx, cy = snapshot.ego_box[:2]
        self.ax.set_xlim(cx - self.view_m, cx + self.view_m)
        self.ax.set_ylim(cy - self.view_m, cy + self.view_m)
        self.text.set_text(caption)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()
