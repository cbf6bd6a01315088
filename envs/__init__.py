"""Gymnasium environments, render backends, wrappers and the batched vector env."""
