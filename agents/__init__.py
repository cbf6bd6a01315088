"""Agents: the planner protocol, baseline planners and RL helpers."""
