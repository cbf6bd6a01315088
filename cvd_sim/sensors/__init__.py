"""Sensors: the ray-casting renderer (RGB, depth, LiDAR) and per-camera layout images."""
