"""Every library scenario plays to the end under the autopilot; the plain-driving ones without an ego collision."""

from __future__ import annotations

import numpy as np
import pytest
from cvd_sim.scenarios.io import load_scenario
from cvd_sim.scenarios.library import library_paths

from cvd_sim.world.autopilot import Autopilot
from cvd_sim.world.world import World

PATHS = library_paths()


def test_the_library_is_not_empty():
    assert len(PATHS) >= 5


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_library_scenario_plays_to_the_end(path):
    scenario = load_scenario(path)
    world = World.from_scenario(scenario, with_expert=False)
    pilot = Autopilot(world)
    while not world.done:
        snap = world.step(pilot(world))
        assert np.all(np.isfinite(snap.boxes)) and np.isfinite(snap.ego.x) and np.isfinite(snap.ego.y)
    assert len(world.records) == scenario.num_steps
    assert world.time == pytest.approx(scenario.num_steps * scenario.dt)
    scores = world.scores()
    assert 0.0 <= scores.nuplan_score <= 1.0 and 0.0 <= scores.arena_score <= 1.0
    if path.stem.startswith("plain"):
        assert scores.num_collisions == 0
        assert scores.drivable_area_compliance == 1.0 and scores.driving_direction_compliance == 1.0
        assert scores.route_completion > 0.3
