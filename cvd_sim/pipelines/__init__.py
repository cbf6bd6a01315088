"""Pipelines: the diffusers-style WorldModel that samples, decodes and reconstructs."""
