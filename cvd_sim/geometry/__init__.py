"""Frames, rigid transforms, oriented boxes, camera rigs, projection and ray maps."""
