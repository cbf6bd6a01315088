"""Scenario schema and loader: bad input is rejected naming the right field; fuzzing raises only ScenarioError."""

from __future__ import annotations

import copy
import json
import math

import pytest
from cvd_sim.scenarios.errors import ScenarioError
from cvd_sim.scenarios.io import (
    load_scenario,
    parse_text,
    save_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from cvd_sim.scenarios.procedural import straight_road
from cvd_sim.scenarios.schema import AgentSpec, EgoSpec, IdmBehavior, Pose, Scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _valid() -> dict:
    m = straight_road(200.0, lanes_forward=2, lanes_backward=1)
    sc = Scenario(
        name="base",
        map=m,
        ego=EgoSpec(pose=Pose(x=20.0, y=-5.25), speed=10.0, route=["f0"]),
        agents=[
            AgentSpec(id="lead", pose=Pose(x=60.0, y=-5.25), speed=8.0, behavior=IdmBehavior(route=["f0"])),
            AgentSpec(id="other", category="truck", pose=Pose(x=60.0, y=-1.75), speed=8.0),
        ],
    )
    return scenario_to_dict(sc)


def _set(data: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value


def _del(data: dict, path: str) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = data
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]


# (id, mutation, expected field path)
BAD_INPUTS = [
    ("missing_version", lambda d: _del(d, "schema_version"), "schema_version"),
    ("future_version", lambda d: _set(d, "schema_version", 7), "schema_version"),
    ("one_point_lane", lambda d: _set(d, "map.lanes.0.centerline", [[0.0, 0.0]]), "map.lanes.0.centerline"),
    ("nan_pose", lambda d: _set(d, "ego.pose.x", math.nan), "ego.pose.x"),
    ("infinite_speed", lambda d: _set(d, "agents.0.speed", math.inf), "agents.0.speed"),
    ("negative_width", lambda d: _set(d, "map.lanes.1.width", -3.5), "map.lanes.1.width"),
    ("zero_size", lambda d: _set(d, "agents.1.size", [7.5, 0.0, 3.0]), "agents.1.size.1"),
    ("unknown_category", lambda d: _set(d, "agents.1.category", "spaceship"), "agents.1.category"),
    ("dangling_successor", lambda d: _set(d, "map.lanes.0.successors", ["nowhere"]), "map.lanes.0.successors.0"),
    ("unknown_route_lane", lambda d: _set(d, "ego.route", ["f0", "f9"]), "ego.route.1"),
    ("disconnected_route", lambda d: _set(d, "ego.route", ["f0", "b0"]), "ego.route.1"),
    ("agent_off_map", lambda d: _set(d, "agents.1.pose", {"x": 60.0, "y": 80.0, "yaw": 0.0}), "agents.1.pose"),
    ("ego_off_map", lambda d: _set(d, "ego.pose", {"x": -50.0, "y": 0.0, "yaw": 0.0}), "ego.pose"),
    ("overlap", lambda d: _set(d, "agents.1.pose", {"x": 61.0, "y": -5.0, "yaw": 0.0}), "agents.1.pose"),
    ("idm_not_on_first_lane", lambda d: _set(d, "agents.0.behavior.route", ["f1"]), "agents.0.pose"),
    (
        "waypoint_times_decrease",
        lambda d: _set(d, "agents.1.behavior", {"type": "waypoints", "points": [{"t": 1, "x": 0, "y": 0}, {"t": 0.5, "x": 1, "y": 0}]}),
        "agents.1.behavior.points",
    ),
    (
        "trigger_two_conditions",
        lambda d: _set(
            d,
            "agents.1.behavior",
            {"type": "trigger", "condition": {"time": 1.0, "ego_distance": 5.0}, "after": {"type": "static"}},
        ),
        "agents.1.behavior.condition",
    ),
    ("unknown_behavior", lambda d: _set(d, "agents.1.behavior", {"type": "teleport"}), "agents.1.behavior"),
    ("unknown_key", lambda d: _set(d, "agents.1.colour", "red"), "agents.1.colour"),
    ("duplicate_agent_id", lambda d: _set(d, "agents.1.id", "lead"), "agents.1.id"),
    ("duplicate_lane_id", lambda d: _set(d, "map.lanes.1.id", "f0"), "map.lanes.1.id"),
    ("no_route_or_goal", lambda d: _set(d, "ego.route", []), "ego"),
    ("dt_longer_than_duration", lambda d: (_set(d, "dt", 5.0), _set(d, "duration", 1.0)), "dt"),
    ("flat_crosswalk", lambda d: _set(d, "map.crosswalks", [{"id": "c", "polygon": [[0, 0], [1, 0]]}]), "map.crosswalks.0.polygon"),
    ("zero_area_crosswalk", lambda d: _set(d, "map.crosswalks", [{"id": "c", "polygon": [[0, 0], [1, 0], [2, 0]]}]), "map.crosswalks.0.polygon"),
    ("bad_line_type", lambda d: _set(d, "map.road_lines.0.type", "dotted_purple"), "map.road_lines.0.type"),
    ("unknown_rig", lambda d: _set(d, "camera_rig", "fisheye_rig"), "camera_rig"),
    ("stop_line_unknown_lane", lambda d: _set(d, "map.stop_lines", [{"id": "s", "polyline": [[50, 0], [50, -7]], "lanes": ["q"]}]), "map.stop_lines.0.lanes.0"),
    ("zero_length_lane", lambda d: _set(d, "map.lanes.2.centerline", [[5, 5], [5, 5]]), "map.lanes.2.centerline"),
    (
        "waypoints_jump_from_pose",
        lambda d: _set(d, "agents.1.behavior", {"type": "waypoints", "points": [{"t": 0, "x": 90, "y": -1.75}, {"t": 1, "x": 95, "y": -1.75}]}),
        "agents.1.behavior",
    ),
    ("wheelbase_too_long", lambda d: _set(d, "ego.vehicle.wheelbase", 9.0), "ego.vehicle"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutate,field", [(m, f) for _, m, f in BAD_INPUTS], ids=[i for i, _, _ in BAD_INPUTS]
)
def test_bad_input_names_the_field(mutate, field):
    data = _valid()
    mutate(data)
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, "bad.yaml")
    fields = [p.field for p in info.value.problems]
    assert field in fields, fields
    assert all(p.file == "bad.yaml" for p in info.value.problems)
    assert all(p.line().startswith(f"bad.yaml: {p.field or '<root>'}: ") for p in info.value.problems)


def test_enough_kinds_of_bad_input():
    assert len({f for _, _, f in BAD_INPUTS}) >= 15


def test_valid_base_and_intentional_overlap():
    data = _valid()
    assert scenario_from_dict(data).agent("lead").dims == (4.6, 1.9, 1.6)
    _set(data, "agents.1.pose", {"x": 61.0, "y": -5.0, "yaw": 0.0})
    _set(data, "agents.1.allow_overlap", True)
    scenario_from_dict(data)  # marked intentional: accepted


def test_nuscenes_category_names_are_normalised():
    data = _valid()
    _set(data, "agents.1.category", "vehicle.truck")
    assert scenario_from_dict(data).agents[1].category == "truck"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_roundtrip(tmp_path, suffix):
    sc = scenario_from_dict(_valid())
    path = save_scenario(sc, tmp_path / f"s{suffix}")
    assert load_scenario(path) == sc
    if suffix == ".json":
        assert json.loads(path.read_text())["schema_version"] == 1


def test_file_level_errors(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert info.value.problems[0].file == str(bad) and "line" in info.value.problems[0].reason
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.yaml")
    assert "cannot read" in info.value.problems[0].reason
    with pytest.raises(ScenarioError):
        scenario_from_dict([1, 2, 3])


def test_scene_text_composed_when_empty():
    sc = scenario_from_dict(
        {**_valid(), "scene": {"time_of_day": "night", "weather": "rain", "place": "bridge"}}
    )
    assert "night" in sc.scene.text and "Rainy" in sc.scene.text and "bridge" in sc.scene.text


# ---------------------------------------------------------------- fuzzing

_BASE = _valid()
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_tree = st.recursive(
    _leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=12,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


_ALL_PATHS = [p for p in _paths(_BASE) if p]


def _load_or_reject(data) -> None:
    try:
        result = scenario_from_dict(data, "fuzz.yaml")
    except ScenarioError as err:
        assert err.problems and all(p.file == "fuzz.yaml" for p in err.problems)
    else:
        assert isinstance(result, Scenario)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(_ALL_PATHS) - 1), value=_tree)
def test_fuzz_replace_one_field(index, value):
    data = copy.deepcopy(_BASE)
    path = _ALL_PATHS[index]
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    _load_or_reject(data)


@settings(max_examples=100, deadline=None)
@given(doc=_tree)
def test_fuzz_whole_documents(doc):
    if isinstance(doc, dict):
        doc = {**doc, "schema_version": 1}
    _load_or_reject(doc)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_text(text):
    try:
        data = parse_text(text, "fuzz.yaml")
    except ScenarioError:
        return
    _load_or_reject(data)
