"""Planner and scenario command-line arguments -> objects, with bad values as one-line `UserError`s."""

from __future__ import annotations

from cvd_sim.cli import UserError


def planner_from_arg(spec: str, flag: str = "--planner"):
    """A planner from a registry name or `module:Class`."""
    from cvd_sim.agents.registry import load_planner

    try:
        return load_planner(spec)
    except ValueError as err:
        raise UserError(f"{flag}: {err}") from None


def scenario_from_arg(ref, flag: str = "--scenario"):
    """A `Scenario` from a file, a library name or a builder reference."""
    from cvd_sim.envs.scenario_source import resolve_scenario
    from cvd_sim.scenarios.errors import ScenarioError

    try:
        return resolve_scenario(ref)
    except ScenarioError as err:
        raise UserError(str(err).splitlines()[0]) from None
    except ValueError as err:
        raise UserError(f"{flag}: {err}") from None
