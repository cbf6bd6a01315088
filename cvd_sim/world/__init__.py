"""World state and its motion: ego dynamics, controllers, traffic, metrics."""
