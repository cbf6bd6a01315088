"""`MapGeometry`: the generic 2D map the mesh world and the nuScenes map writer are built from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import MultiPolygon, Polygon

LINE_KINDS = ("solid", "broken", "double")
LINE_COLOURS = ("white", "yellow")


@dataclass(frozen=True)
class RoadLine:
    """A painted line: points [P, 2] world metres; kind in LINE_KINDS; colour in LINE_COLOURS."""

    points: np.ndarray
    kind: str = "solid"
    colour: str = "white"

    def __post_init__(self) -> None:
        if self.kind not in LINE_KINDS or self.colour not in LINE_COLOURS:
            raise ValueError(
                f"road line {self.kind}/{self.colour}: expected kind {LINE_KINDS}, colour {LINE_COLOURS}"
            )


@dataclass(frozen=True)
class MapGeometry:
    """World-frame map in metres.

    drivable_area: shapely (Multi)Polygon; road_lines: painted lines; crosswalks: polygons [K, 2];
    road_edges: polylines [P, 2] bounding the road; lane_centerlines: polylines [P, 2] in driving direction.
    """

    drivable_area: Polygon | MultiPolygon
    road_lines: list[RoadLine] = field(default_factory=list)
    crosswalks: list[np.ndarray] = field(default_factory=list)
    road_edges: list[np.ndarray] = field(default_factory=list)
    lane_centerlines: list[np.ndarray] = field(default_factory=list)
    lane_width: float = 3.5
