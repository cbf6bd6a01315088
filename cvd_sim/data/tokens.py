"""Deterministic nuScenes tokens: 32 hex digits derived from a name, so reruns write identical tables."""

from __future__ import annotations

import hashlib


def token(*parts: object) -> str:
    """Token of a record identified by `parts` (e.g. "sample", scene name, frame index)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()
