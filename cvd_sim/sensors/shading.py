"""Shading of ray hits: Lambert + ambient (precomputed per face side), lamp light, texture, haze, sky -> sRGB."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.lighting import Lighting
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.parallel import for_row_chunks
from cvd_sim.sensors.raycaster import Hits
from cvd_sim.sensors.texture import WINDOW_LIGHT, WINDOW_TINT, texture

LAMP_RANGE = 8.0  # metres at which the camera-side lamp light has fallen to half
_LUT_SIZE = 4096
SRGB_LUT = (np.linspace(0.0, 1.0, _LUT_SIZE) ** (1 / 2.2) * 255 + 0.5).astype(
    np.uint8
)  # linear -> 8-bit sRGB


def _srgb8(scaled: np.ndarray) -> np.ndarray:
    """Linear RGB (any shape) already scaled to lookup-table units (1.0 -> _LUT_SIZE - 1; clipped here, in
    place) -> uint8 sRGB (gamma 2.2)."""
    np.clip(scaled, 0, _LUT_SIZE - 1, out=scaled)
    return SRGB_LUT.take(scaled.astype(np.int32))


def face_radiance(mesh: MeshSet, lighting: Lighting) -> np.ndarray:
    """Sun + ambient light reflected by each face, seen from its front and back side -> [F, 2, 3] float32."""
    v = mesh.vertices[mesh.faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    cos = (n @ lighting.sun_direction)[:, None]
    sides = np.stack([np.maximum(cos, 0.0), np.maximum(-cos, 0.0)], axis=1)  # [F, 2, 1]
    return (mesh.face_albedo[:, None] * (lighting.ambient + sides * lighting.sun_colour)).astype(np.float32)


def shade(
    hits: Hits, rays: np.ndarray, lighting: Lighting, radiance: np.ndarray, nthreads: int = 1
) -> np.ndarray:
    """Colour [..., 3] uint8 sRGB of the hits of rays [..., 6] (world, any direction length).

    radiance [F + 1, 2, 3]: `face_radiance` of the caster's face table (static, agents, then a zero miss row).
    Contiguous chunks of rays are shaded on up to `nthreads` threads (0 = all cores); the result does not
    depend on the thread count.
    """
    shape = hits.t.shape
    t, face = hits.t.reshape(-1), hits.face.reshape(-1)
    normal, rays = hits.normal.reshape(-1, 3), rays.reshape(-1, 6)
    semantic = hits.semantic.reshape(-1)
    albedo = hits.albedo.reshape(-1, 3) if lighting.headlight > 0 else None
    out = np.empty((len(t), 3), np.uint8)

    def rows(s: slice) -> None:
        lamp_albedo = None if albedo is None else albedo[s]
        out[s] = _shade_rows(t[s], face[s], normal[s], rays[s], semantic[s], lamp_albedo, lighting, radiance)

    for_row_chunks(rows, len(t), nthreads)
    return out.reshape(*shape, 3)


def _shade_rows(
    t: np.ndarray,
    face: np.ndarray,
    normal: np.ndarray,
    rays: np.ndarray,
    semantic: np.ndarray,
    albedo: np.ndarray | None,
    lighting: Lighting,
    radiance: np.ndarray,
) -> np.ndarray:
    """sRGB [N, 3] uint8 of N hits: t [N], face [N], normal [N, 3], rays [N, 6], semantic [N], albedo [N, 3]
    (needed when lighting.headlight > 0). Misses are replaced by the sky at the end.

    Linear colour = (radiance + lamp) * grain (* window tint) (+ window light), then haze:
    colour * fog + haze * (1 - fog); exposure and the lookup-table scale are folded into the per-ray factors.
    """
    d = rays[:, 3:6]
    miss = face == len(radiance) - 1
    t = np.where(miss, np.float32(0), t)
    cos_nd = np.einsum("nk,nk->n", normal, d)
    side = face * 2
    side += cos_nd > 0
    colour = radiance.reshape(-1, 3).take(side, axis=0)
    points = d * t[:, None]
    points += rays[:, :3]
    scale, windows, lit = texture(semantic, points, normal, lighting.time_of_day == "night")
    dist = np.sqrt(np.einsum("nk,nk->n", d, d))  # |d|, then the distance along the ray
    if lighting.headlight > 0:
        facing = np.abs(cos_nd) / dist
        dist *= t
        lamp = np.float32(lighting.headlight) * facing / (1.0 + (dist * np.float32(1 / LAMP_RANGE)) ** 2)
        colour += albedo * lamp[:, None]
    else:
        dist *= t
    colour[windows] *= WINDOW_TINT
    exposure = np.float32(lighting.exposure * (_LUT_SIZE - 1))
    fog = np.exp(np.float32(-lighting.haze_density) * dist)
    fog *= exposure  # fog and exposure: the factor of the surface's own light
    scale *= fog
    colour *= scale[:, None]
    if lighting.haze_density > 0:
        colour += (exposure - fog)[:, None] * lighting.haze_colour
    colour[lit] += fog[lit, None] * WINDOW_LIGHT
    sky = np.flatnonzero(miss)
    if len(sky):
        colour[sky] = lighting.sky(d[sky]) * exposure
    return _srgb8(colour)
