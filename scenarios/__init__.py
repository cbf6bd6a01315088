"""Scenarios: schema, I/O, editors, procedural maps, edge-case builders, library, ScenarioNet, plots."""
