"""The map-expansion writer, read back by nuscenes-devkit's NuScenesMap."""

from __future__ import annotations

import json

import numpy as np
import shapely
from shapely.geometry import LineString, Point

from cvd_sim.data.map_expansion import map_expansion
from cvd_sim.data.map_polylines import map_polylines, open_map
from cvd_sim.sensors.map_geometry import MapGeometry, RoadLine


def _geometry() -> MapGeometry:
    arc = np.stack(
        [300 + 60 * np.cos(np.linspace(0, 1.2, 30)), 200 + 60 * np.sin(np.linspace(0, 1.2, 30))], 1
    )
    straight = np.array([[150.0, 200.0], [300.0 + 60, 200.0]])
    lanes = [straight, arc]
    road = shapely.union_all([LineString(p).buffer(3.5, cap_style="flat") for p in lanes])
    return MapGeometry(
        drivable_area=road,
        road_lines=[
            RoadLine(straight + np.array([0, 1.75]), "double", "yellow"),
            RoadLine(straight - np.array([0, 1.75]), "broken", "white"),
        ],
        crosswalks=[np.array([[200.0, 196.0], [204.0, 196.0], [204.0, 204.0], [200.0, 204.0]])],
        lane_centerlines=lanes,
        lane_width=3.5,
    )


def test_devkit_reads_lanes_dividers_crossings_and_drivable_area(tmp_path):
    geom = _geometry()
    (tmp_path / "maps" / "expansion").mkdir(parents=True)
    (tmp_path / "maps" / "expansion" / "synthdrive-test.json").write_text(
        json.dumps(map_expansion(geom, "x"))
    )
    nusc_map = open_map(str(tmp_path), "synthdrive-test")
    assert len(nusc_map.lane) == 2 and len(nusc_map.road_divider) == 1 and len(nusc_map.lane_divider) == 1
    assert len(nusc_map.ped_crossing) == 1
    lanes = nusc_map.discretize_lanes([lane["token"] for lane in nusc_map.lane], 0.5)
    for centre, poses in zip(geom.lane_centerlines, lanes.values()):
        pts = np.asarray(poses)[:, :2]
        line = LineString(centre)
        assert max(line.distance(Point(p)) for p in pts) < 1e-6
        assert np.allclose(pts[0], centre[0]) and np.allclose(pts[-1], centre[-1], atol=1e-6)
    area = sum(nusc_map.extract_polygon(t).area for t in nusc_map.drivable_area[0]["polygon_tokens"])
    assert abs(area - geom.drivable_area.area) < 1e-2
    assert nusc_map.layers_on_point(202.0, 200.0, ["ped_crossing"])["ped_crossing"]
    lines, types = map_polylines(nusc_map, (140.0, 150.0, 380.0, 280.0), 32, 10)
    assert set(types[types >= 0].tolist()) == {0, 1, 2, 3}
    assert (types >= 0).sum() >= 6 and (lines[types < 0] == 0).all()
    inside = lines[types >= 0][..., :2]
    assert (inside[..., 0] >= 140 - 1e-4).all() and (inside[..., 0] <= 380 + 1e-4).all()
