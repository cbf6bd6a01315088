"""World core: ego dynamics, reactive traffic, waypoint tracking, autopilot, closed-loop checks and scores."""
