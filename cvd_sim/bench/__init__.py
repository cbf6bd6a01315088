"""Benchmarks behind `cvd-sim bench`: each prints a table and writes JSON."""
