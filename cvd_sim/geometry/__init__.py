"""Geometry: rigid transforms, oriented boxes, camera rigs, pinhole projection with near-plane clipping, rays."""
