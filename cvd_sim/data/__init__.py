"""Datasets: the SynthDrive writer (nuScenes layout) and the clip loader."""
