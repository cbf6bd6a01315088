"""Shading of ray hits: Lambert + ambient (precomputed per face side), lamp light, texture, haze, sky -> sRGB."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.lighting import Lighting
from cvd_sim.sensors.materials import SEMANTIC_TEXTURE
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.raycaster import Hits
from cvd_sim.sensors.texture import WINDOW_LIGHT, WINDOW_TINT, texture

LAMP_RANGE = 8.0  # metres at which the camera-side lamp light has fallen to half
_LUT_SIZE = 4096
SRGB_LUT = (np.linspace(0.0, 1.0, _LUT_SIZE) ** (1 / 2.2) * 255 + 0.5).astype(
    np.uint8
)  # linear -> 8-bit sRGB


def to_srgb8(linear: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """Linear RGB (any shape) times exposure -> uint8 sRGB (gamma 2.2) through a lookup table."""
    scaled = linear * np.float32(exposure * (_LUT_SIZE - 1))
    np.clip(scaled, 0, _LUT_SIZE - 1, out=scaled)
    return SRGB_LUT[scaled.astype(np.int32)]


def face_radiance(mesh: MeshSet, lighting: Lighting) -> np.ndarray:
    """Sun + ambient light reflected by each face, seen from its front and back side -> [F, 2, 3] float32."""
    v = mesh.vertices[mesh.faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    cos = (n @ lighting.sun_direction)[:, None]
    sides = np.stack([np.maximum(cos, 0.0), np.maximum(-cos, 0.0)], axis=1)  # [F, 2, 1]
    return (mesh.face_albedo[:, None] * (lighting.ambient + sides * lighting.sun_colour)).astype(np.float32)


def shade(hits: Hits, rays: np.ndarray, lighting: Lighting, radiance: np.ndarray) -> np.ndarray:
    """Colour [..., 3] uint8 sRGB of the hits of rays [..., 6] (world, any direction length).

    radiance [F + 1, 2, 3]: `face_radiance` of the caster's face table (static, agents, then a zero miss row).
    Works on whole arrays; misses are replaced by the sky at the end.
    """
    shape = hits.t.shape
    rays = rays.reshape(-1, 6)
    d = rays[:, 3:6]
    face = hits.face.reshape(-1)
    normal = hits.normal.reshape(-1, 3)
    miss = face == len(radiance) - 1
    t = np.where(miss, np.float32(0), hits.t.reshape(-1))
    cos_nd = np.einsum("nk,nk->n", normal, d)
    colour = radiance.reshape(-1, 3)[face * 2 + (cos_nd > 0)]
    points = rays[:, :3] + d * t[:, None]
    kind = SEMANTIC_TEXTURE[hits.semantic.reshape(-1)]
    grain, windows, lit = texture(kind, points, normal, lighting.time_of_day == "night")
    d_len = np.sqrt(np.einsum("nk,nk->n", d, d))
    dist = t * d_len
    if lighting.headlight > 0:
        facing = np.abs(cos_nd) / d_len
        lamp = np.float32(lighting.headlight) * facing / (1.0 + (dist * np.float32(1 / LAMP_RANGE)) ** 2)
        colour += hits.albedo.reshape(-1, 3) * lamp[:, None]
    colour *= grain[:, None]
    colour[windows] *= WINDOW_TINT
    colour[lit] += WINDOW_LIGHT
    if lighting.haze_density > 0:
        fog = np.exp(np.float32(-lighting.haze_density) * dist)[:, None]
        colour = lighting.haze_colour + (colour - lighting.haze_colour) * fog
    sky = np.flatnonzero(miss)
    if len(sky):
        colour[sky] = lighting.sky(d[sky])
    return to_srgb8(colour, lighting.exposure).reshape(*shape, 3)
