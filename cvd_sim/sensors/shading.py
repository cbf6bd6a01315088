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


def _srgb8(scaled: np.ndarray, out: np.ndarray) -> None:
    """Linear RGB [3, N] (channel-major) already scaled to lookup-table units (1.0 -> _LUT_SIZE - 1; clipped
    here, in place) -> uint8 sRGB (gamma 2.2) written to out [N, 3] (pixel-major)."""
    np.clip(scaled, 0, _LUT_SIZE - 1, out=scaled)
    index = scaled.astype(np.intp)  # truncates
    for channel in range(3):  # channel by channel: the fastest transpose into out
        out[:, channel] = SRGB_LUT.take(index[channel])


def face_radiance(mesh: MeshSet, lighting: Lighting) -> np.ndarray:
    """Sun + ambient light reflected by each face, seen from its front and back side -> [F, 2, 3] float32."""
    v = mesh.vertices.take(mesh.faces, axis=0)  # [F, 3 corners, 3]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    n = np.empty_like(e1)
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):  # the cross product, column by column
        n[:, i] = e1[:, j] * e2[:, k] - e1[:, k] * e2[:, j]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    cos = n @ lighting.sun_direction
    out = np.empty((len(n), 2, 3), np.float32)
    for side, sun in enumerate((np.maximum(cos, 0.0), np.maximum(-cos, 0.0))):
        for c in range(3):
            light = lighting.ambient[c] + sun * lighting.sun_colour[c]
            np.multiply(mesh.face_albedo[:, c], light, out=out[:, side, c])
    return out


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
    albedo = hits.albedo_by_channel() if lighting.headlight > 0 else None
    table = np.ascontiguousarray(radiance.reshape(-1, 3).T)  # [3, 2 (F + 1)]: channel-major face sides
    out = np.empty((len(t), 3), np.uint8)

    def rows(s: slice) -> None:
        lamp_albedo = None if albedo is None else albedo[:, s]
        _shade_rows(t[s], face[s], normal[s].T, rays[s].T, semantic[s], lamp_albedo, lighting, table, out[s])

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
    table: np.ndarray,
    out: np.ndarray,
) -> None:
    """sRGB of N hits into out [N, 3] uint8: t [N], face [N], normal [3, N], rays [6, N], semantic [N],
    albedo [3, N] (needed when lighting.headlight > 0); table [3, 2 (F + 1)] radiance of each face side.
    Misses are replaced by the sky at the end. Channel-major rows keep every pass contiguous.

    Linear colour = (radiance + lamp) * grain (* window tint) (+ window light), then haze:
    colour * fog + haze * (1 - fog); exposure and the lookup-table scale are folded into the per-ray factors.
    """
    d = np.ascontiguousarray(rays[3:6])
    miss = face == table.shape[1] // 2 - 1
    t = np.where(miss, np.float32(0), t)
    normal = np.ascontiguousarray(normal)
    cos_nd = _dot(normal, d)
    side = face * 2
    side += cos_nd > 0
    colour = table.take(side, axis=1)
    points = d * t
    points += rays[:3]
    scale, windows, lit = texture(semantic, points, normal, lighting.time_of_day == "night")
    dist = np.sqrt(_dot(d, d))  # |d|, then the distance along the ray
    if lighting.headlight > 0:
        facing = np.abs(cos_nd) / dist
        dist *= t
        lamp = np.float32(lighting.headlight) * facing / (1.0 + (dist * np.float32(1 / LAMP_RANGE)) ** 2)
        colour += albedo * lamp
    else:
        dist *= t
    for channel, tint in zip(colour, WINDOW_TINT):  # row by row: ~2x faster than one 2D fancy index
        channel[windows] *= tint
    exposure = np.float32(lighting.exposure * (_LUT_SIZE - 1))
    fog = np.exp(np.float32(-lighting.haze_density) * dist)
    fog *= exposure  # fog and exposure: the factor of the surface's own light
    scale *= fog
    colour *= scale
    if lighting.haze_density > 0:
        colour += (exposure - fog) * lighting.haze_colour[:, None]
    colour[:, lit] += fog[lit] * WINDOW_LIGHT[:, None]
    sky = np.flatnonzero(miss)
    if len(sky):
        colour[:, sky] = lighting.sky(d.take(sky, axis=1)) * exposure
    _srgb8(colour, out)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product [N] of channel-major vectors a, b [3, N], summed x, y, z in that order."""
    out = a[0] * b[0]
    out += a[1] * b[1]
    out += a[2] * b[2]
    return out
