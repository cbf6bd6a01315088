"""ScenarioNet conversion: lossless round trips for what both formats hold, and foreign-file import."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
from cvd_sim.scenarios import builders
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.library_build import plain_dusk_curve, plain_night_intersection
from cvd_sim.scenarios.scenarionet import (
    from_scenarionet,
    read_scenarionet_pickle,
    to_scenarionet,
    write_scenarionet_pickle,
)
from cvd_sim.scenarios.trajectories import agent_states, ego_center_states

ROAD_LINE_TYPES = {
    "ROAD_LINE_BROKEN_SINGLE_WHITE", "ROAD_LINE_SOLID_SINGLE_WHITE", "ROAD_LINE_SOLID_DOUBLE_WHITE",
    "ROAD_LINE_BROKEN_SINGLE_YELLOW", "ROAD_LINE_BROKEN_DOUBLE_YELLOW", "ROAD_LINE_SOLID_SINGLE_YELLOW",
    "ROAD_LINE_SOLID_DOUBLE_YELLOW", "ROAD_LINE_PASSING_DOUBLE_YELLOW", "ROAD_LINE_UNKNOWN",
}  # fmt: skip
KNOWN_TYPES = ROAD_LINE_TYPES | {
    "LANE_SURFACE_STREET", "LANE_FREEWAY", "LANE_BIKE_LANE", "LANE_UNKNOWN", "ROAD_EDGE_BOUNDARY",
    "ROAD_EDGE_MEDIAN", "ROAD_EDGE_SIDEWALK", "ROAD_EDGE_UNKNOWN", "CROSSWALK", "STOP_SIGN",
}  # fmt: skip

SCENARIOS = {
    "cut_in": builders.cut_in,
    "pedestrian_crossing": builders.pedestrian_crossing,
    "unprotected_left_turn": builders.unprotected_left_turn,
    "merge": builders.merge,
    "plain_dusk_curve": plain_dusk_curve,
    "plain_night_intersection": plain_night_intersection,
}


def _strip_ours(sn: dict) -> dict:
    """What a file written by another tool would hold: no cvd_sim metadata."""
    sn = {**sn, "metadata": {k: v for k, v in sn["metadata"].items() if k not in ("cvd_sim", "map_name")}}
    sn["tracks"] = {
        tid: {**t, "metadata": {k: v for k, v in t["metadata"].items() if not k.startswith("cvd_sim")}}
        for tid, t in sn["tracks"].items()
    }
    return sn


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ours_to_scenarionet_and_back_is_exact(name, tmp_path):
    sc = SCENARIOS[name]()
    sn = to_scenarionet(sc)
    back, skipped = from_scenarionet(
        read_scenarionet_pickle(write_scenarionet_pickle(sn, tmp_path / "sd.pkl"))
    )
    assert skipped == []
    assert back == sc


def test_scenarionet_layout_and_tracks():
    sc = builders.pedestrian_crossing()
    sn = to_scenarionet(sc)
    assert {"id", "version", "length", "metadata", "tracks", "dynamic_map_states", "map_features"} <= set(sn)
    n = sc.num_steps + 1
    assert sn["length"] == n and len(sn["metadata"]["ts"]) == n and sn["metadata"]["sdc_id"] == "ego"
    assert {f["type"] for f in sn["map_features"].values()} <= KNOWN_TYPES
    for track in sn["tracks"].values():
        st = track["state"]
        assert (
            st["position"].shape == (n, 3) and st["heading"].shape == (n,) and st["velocity"].shape == (n, 2)
        )
        assert st["valid"].dtype == bool and st["valid"].all()
    walker = sc.agent("walker")
    np.testing.assert_allclose(
        sn["tracks"]["walker"]["state"]["position"][:, :2], agent_states(sc, walker)[:, :2]
    )
    assert sn["tracks"]["walker"]["type"] == "PEDESTRIAN"
    np.testing.assert_allclose(sn["tracks"]["ego"]["state"]["position"][:, :2], ego_center_states(sc)[:, :2])
    lane = sn["map_features"]["f0"]
    assert (
        lane["exit_lanes"] == []
        and lane["left_neighbor"] == []
        and lane["speed_limit_kmh"] == pytest.approx(13.9 * 3.6)
    )


@pytest.mark.parametrize("name", ["cut_in", "unprotected_left_turn", "plain_night_intersection"])
def test_foreign_import_keeps_map_initial_states_and_tracks(name):
    sc = SCENARIOS[name]()
    sn = _strip_ours(to_scenarionet(sc))
    imported, skipped = from_scenarionet(sn)
    assert skipped == []
    assert imported.map.lanes == sc.map.lanes and imported.map.road_lines == sc.map.road_lines
    assert imported.map.crosswalks == sc.map.crosswalks and imported.map.stop_lines == sc.map.stop_lines
    for agent in sc.agents:
        got = imported.agent(agent.id)
        assert got.category == agent.category or (
            agent.category in ("truck", "bus") and got.category in ("truck", "bus")
        )
        assert got.dims == pytest.approx(agent.dims)
        track = sn["tracks"][agent.id]["state"]
        assert (got.pose.x, got.pose.y) == pytest.approx(tuple(track["position"][0, :2]))
    # ScenarioNet -> ours -> ScenarioNet keeps every track position at every frame
    again = to_scenarionet(imported)
    for tid, track in sn["tracks"].items():
        if tid == "ego":
            continue
        np.testing.assert_allclose(
            again["tracks"][tid]["state"]["position"][:, :2], track["state"]["position"][:, :2], atol=1e-9
        )
    assert imported.ego.route == sc.ego.route
    assert (imported.ego.pose.x, imported.ego.pose.y) == pytest.approx(
        (sc.ego.pose.x, sc.ego.pose.y), abs=0.05
    )


def _waymo_like() -> dict:
    t = 11
    ts = np.arange(t) * 0.1
    lane = np.column_stack([np.linspace(0, 100, 21), np.zeros(21), np.zeros(21)]).astype(np.float32)

    def track(kind, x0, vx, valid, length=4.5):
        pos = np.column_stack([x0 + vx * ts, np.zeros(t), np.full(t, 0.8)])
        return {
            "type": kind,
            "state": {"position": pos, "heading": np.zeros(t), "velocity": np.column_stack([np.full(t, vx), np.zeros(t)]),
                      "valid": valid, "length": np.full(t, length), "width": np.full(t, 2.0), "height": np.full(t, 1.6)},
            "metadata": {"type": kind, "object_id": "x"},
        }  # fmt: skip

    late = np.ones(t, bool)
    late[:3] = False
    return {
        "id": "waymo_like",
        "version": "2023-07-01",
        "length": t,
        "metadata": {"ts": ts, "sdc_id": 7, "dataset": "waymo", "coordinate": "right-handed"},
        "tracks": {
            7: track("VEHICLE", 10.0, 10.0, np.ones(t, bool)),
            8: track("VEHICLE", 40.0, 8.0, np.ones(t, bool), length=12.0),
            9: track("PEDESTRIAN", 70.0, 0.0, np.ones(t, bool), length=0.6),
            10: track("VEHICLE", 90.0, 5.0, late),
            11: track("OTHER", 60.0, 0.0, np.ones(t, bool)),
        },
        "dynamic_map_states": {},
        "map_features": {
            100: {"type": "LANE_SURFACE_STREET", "polyline": lane, "entry_lanes": [], "exit_lanes": [], "speed_limit_kmh": 50.0,
                  "left_neighbor": [{"feature_id": 101, "self_start_index": 0}], "right_neighbor": []},
            101: {"type": "LANE_SURFACE_STREET", "polyline": lane + np.array([0, 3.5, 0]), "entry_lanes": [], "exit_lanes": [],
                  "right_neighbor": [{"feature_id": 100}], "left_neighbor": []},
            200: {"type": "ROAD_LINE_BROKEN_SINGLE_WHITE", "polyline": lane + np.array([0, 1.75, 0])},
            300: {"type": "SPEED_BUMP", "polygon": np.zeros((4, 2))},
        },
    }  # fmt: skip


def test_import_waymo_like_dict():
    sc, skipped = from_scenarionet(_waymo_like())
    assert sorted(skipped) == ["10", "11", "300"]  # late track, unknown type, unsupported map feature
    assert sc.map.lane("100").left_neighbors == ["101"] and sc.map.lane("100").speed_limit == pytest.approx(
        50 / 3.6
    )
    assert sc.agent("8").category == "bus" and sc.agent("8").behavior.type == "waypoints"
    assert sc.agent("9").category == "pedestrian" and sc.agent("9").behavior.type == "static"
    assert sc.ego.route == ["100"] and sc.ego.speed == pytest.approx(10.0)
    pts = sc.agent("8").behavior.points
    assert len(pts) == 11 and pts[-1].x == pytest.approx(48.0)


def test_read_pickle_with_scenario_description_class(tmp_path, monkeypatch):
    module = types.ModuleType("metadrive.scenario.scenario_description")

    class ScenarioDescription(dict):
        pass

    ScenarioDescription.__module__ = module.__name__
    ScenarioDescription.__qualname__ = "ScenarioDescription"
    module.ScenarioDescription = ScenarioDescription
    for name in ("metadrive", "metadrive.scenario", "metadrive.scenario.scenario_description"):
        monkeypatch.setitem(
            sys.modules, name, module if name.endswith("description") else types.ModuleType(name)
        )
    path = tmp_path / "sd_waymo.pkl"
    path.write_bytes(pickle.dumps(ScenarioDescription(_waymo_like())))
    for name in ("metadrive", "metadrive.scenario", "metadrive.scenario.scenario_description"):
        monkeypatch.delitem(sys.modules, name)
    data = read_scenarionet_pickle(path)
    assert type(data) is dict and from_scenarionet(data)[0].agent("8")


def test_bad_pickles_are_rejected(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"f": print}))
    with pytest.raises(ScenarioError):
        read_scenarionet_pickle(path)
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ScenarioError):
        read_scenarionet_pickle(path)
    with pytest.raises(ScenarioError):
        from_scenarionet({"tracks": {}, "map_features": {}, "length": 3})
