"""Plain numpy shading: the reference of the compiled kernel `cvd_sim.sensors.shading_kernel`, in float32 and
in the same order of operations (channel-major vectorised passes), but for numpy's exp and the BLAS rounding of
the sky's sun dot product."""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors.lighting import Lighting
from cvd_sim.sensors.shading import LAMP_RANGE, SRGB_LUT
from cvd_sim.sensors.texture import (
    NOISE_SIZE,
    SEMANTIC_FACADE,
    SEMANTIC_GRAIN,
    WINDOW_LIGHT,
    WINDOW_TINT,
    noise_image,
)

LUT_SIZE = len(SRGB_LUT)


def shade_numpy(hits, rays: np.ndarray, lighting: Lighting, radiance: np.ndarray) -> np.ndarray:
    """Colour [..., 3] uint8 sRGB of the hits of rays [..., 6]; radiance [F + 1, 2, 3] (`face_radiance`)."""
    shape = hits.t.shape
    t, face = hits.t.reshape(-1), hits.face.reshape(-1)
    normal, rays = hits.normal.reshape(-1, 3).T, rays.reshape(-1, 6).T
    albedo = np.ascontiguousarray(hits.albedo.reshape(-1, 3).T)
    table = np.ascontiguousarray(radiance.reshape(-1, 3).T)  # [3, 2 (F + 1)]: channel-major face sides
    out = np.empty((len(t), 3), np.uint8)
    _shade_rows(t, face, normal, rays, hits.semantic.reshape(-1), albedo, lighting, table, out)
    return out.reshape(*shape, 3)


def _shade_rows(t, face, normal, rays, semantic, albedo, lighting: Lighting, table, out) -> None:
    """sRGB of N hits into out [N, 3] uint8: t [N], face [N], normal [3, N], rays [6, N], semantic [N],
    albedo [3, N]; table [3, 2 (F + 1)] radiance of each face side. Misses are replaced by the sky at the end.

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
    for channel, tint in zip(colour, WINDOW_TINT):
        channel[windows] *= tint
    exposure = np.float32(lighting.exposure * (LUT_SIZE - 1))
    fog = np.exp(np.float32(-lighting.haze_density) * dist)
    fog *= exposure  # fog and exposure: the factor of the surface's own light
    scale *= fog
    colour *= scale
    if lighting.haze_density > 0:
        colour += (exposure - fog) * lighting.haze_colour[:, None]
    colour[:, lit] += fog[lit] * WINDOW_LIGHT[:, None]
    sky = np.flatnonzero(miss)
    if len(sky):
        colour[:, sky] = sky_colour(lighting, d.take(sky, axis=1)) * exposure
    np.clip(colour, 0, LUT_SIZE - 1, out=colour)
    index = colour.astype(np.intp)  # truncates
    for channel in range(3):
        out[:, channel] = SRGB_LUT.take(index[channel])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product [N] of channel-major vectors a, b [3, N], summed x, y, z in that order."""
    out = a[0] * b[0]
    out += a[1] * b[1]
    out += a[2] * b[2]
    return out


def sky_colour(lighting: Lighting, directions: np.ndarray) -> np.ndarray:
    """Sky colour [3, N] float32 for world ray directions [3, N] (channel-major, any length)."""
    d = np.asarray(directions, np.float32)
    inv_len = np.float32(1) / np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    up = d[2] * inv_len  # sine of the elevation
    height = np.sqrt(np.clip(up, 0, 1))
    glow = np.ascontiguousarray(d.T) @ lighting.sun_direction  # [N, 3] @ [3]: the BLAS rounding of the rows
    glow *= inv_len
    np.clip(glow, 0, 1, out=glow)
    for _ in range(6):  # cos^64: a tight halo around the sun
        glow *= glow
    halo = lighting.sun_colour * np.float32(0.6)
    colour = np.empty((3, d.shape[1]), np.float32)
    for c in range(3):
        np.multiply(height, lighting.sky_zenith[c] - lighting.sky_horizon[c], out=colour[c])
        colour[c] += lighting.sky_horizon[c]
        colour[c] += glow * halo[c]
    if lighting.cloud_cover > 0:
        to_plane = inv_len / np.maximum(up, np.float32(0.05))  # onto a cloud plane one unit up
        noise = sample_noise(d[0] * to_plane, d[1] * to_plane, 0.02, seed=7)
        cloud = np.clip(noise * np.float32(1.6) + np.float32(lighting.cloud_cover - 0.8), 0, 1)
        colour *= 1 - cloud
        colour += cloud * (lighting.haze_colour * np.float32(1.1))[:, None]
    return colour


def _texel(coord: np.ndarray, texel: float) -> np.ndarray:
    """Wrapped texel index [N] int32 of coordinates [N] (metres), one texel every `texel` metres."""
    scaled = coord * (1.0 / texel)
    index = np.floor(scaled, out=scaled).astype(np.int32)
    index &= NOISE_SIZE - 1
    return index


def sample_noise(u: np.ndarray, v: np.ndarray, texel: float, seed: int = 0) -> np.ndarray:
    """Noise in [0, 1] at 2D points (u [N], v [N], metres), one texel every `texel` metres (nearest) -> [N]."""
    flat = _texel(v, texel)
    flat <<= NOISE_SIZE.bit_length() - 1  # row * NOISE_SIZE
    flat |= _texel(u, texel)
    return noise_image(seed).ravel().take(flat)


def remainder(a: np.ndarray, b: float) -> np.ndarray:
    """a % b [N] float32, bit for bit numpy's float32 remainder (b > 0, |a| < 2**28 b): in float64,
    a - floor(a / b) * b is exact for float32 a and b (a floor one too high leaves r < 0, fixed by adding b)."""
    b64 = np.float64(np.float32(b))
    a64 = a.astype(np.float64)
    r = a64 - np.floor(a64 / b64) * b64
    r[r < 0] += b64
    return r.astype(np.float32)


def texture(semantic: np.ndarray, points: np.ndarray, normals: np.ndarray, night: bool):
    """Grain [N] float32, window indices [K] and lit-window indices [L] of N surface points with semantic ids
    [N]; points/normals [3, N] world, channel-major."""
    wall = np.abs(normals[2]) < 0.7
    x, y = points[0], points[1]
    along = y * normals[0]
    along -= x * normals[1]
    u, v = np.where(wall, along, x), np.where(wall, points[2], y)
    grain = sample_noise(u, v, 0.1, seed=1)
    grain -= np.float32(0.5)
    grain *= SEMANTIC_GRAIN[semantic]
    grain += np.float32(1.0)
    facade = np.flatnonzero(SEMANTIC_FACADE[semantic] & wall & (v > 1.2))  # no window below 1.2 m
    if not len(facade):
        return grain, facade, facade
    u, z = u[facade], v[facade]
    zf = remainder(z, 3.2)
    band = np.flatnonzero((zf > 1.0) & (zf < 2.4))  # a storey's window band
    window = band[remainder(u[band], 2.6) > 0.6]
    lit = np.zeros(0, np.int64)
    if night:
        lit = facade[
            window[sample_noise(np.floor(u[window] / 2.6), np.floor(z[window] / 3.2), 1.0, seed=3) > 0.55]
        ]
    return grain, facade[window], lit
