"""Planners: the planner protocol, baseline planners (constant velocity, IDM, pure pursuit), nuPlan-style adapter."""
