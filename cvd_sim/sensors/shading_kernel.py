"""Shading as one compiled pass per pixel (numba): Lambert + ambient per face side, lamp light, texture grain,
facade windows, haze, sky, exposure and the sRGB table.

The arithmetic is float32 in the order of its plain numpy reference (tests/sensors_numpy_shading.py), so
images agree with it but for float rounding: exp and the sky's sun dot product may differ in the last bit.
Compiled with nogil, so row chunks shade on threads (`parallel.for_row_chunks`).
"""

from __future__ import annotations

import numba
import numpy as np

from cvd_sim.sensors.texture import NOISE_SIZE

F32 = np.float32
ZERO, HALF, ONE = F32(0.0), F32(0.5), F32(1.0)
NOISE_MASK = NOISE_SIZE - 1
NOISE_SHIFT = NOISE_SIZE.bit_length() - 1  # row * NOISE_SIZE == row << NOISE_SHIFT
GRAIN_TEXELS_PER_M = F32(1.0 / 0.1)  # grain noise: one texel per 0.1 m
CLOUD_TEXELS_PER_UNIT = F32(1.0 / 0.02)  # cloud noise on a plane one unit above the camera
WALL_MAX_NZ = F32(0.7)  # |normal z| below this: a wall (texture in along-wall, z coordinates)
WINDOW_MIN_Z = F32(1.2)  # no window below 1.2 m
STOREY, BAY = F32(3.2), F32(2.6)  # facade window grid (metres)
BAND_LO, BAND_HI, BAY_WALL = F32(1.0), F32(2.4), F32(0.6)  # window band within a storey; wall part of a bay
LIT_ABOVE = F32(0.55)  # noise above which a window is lit at night
CLOUD_MIN_UP, CLOUD_GAIN = F32(0.05), F32(1.6)

# Rows of the `colours` argument [COLOUR_ROWS, 3] float32 and entries of `scalars` [SCALARS] float32.
SUN, HALO, SKY_GRADIENT, SKY_HORIZON, HAZE, CLOUD, TINT, WINDOW_GLOW = range(8)
COLOUR_ROWS = 8
HEADLIGHT, LAMP_FALLOFF, FOG_RATE, EXPOSURE, CLOUD_BIAS = range(5)
SCALARS = 5


@numba.njit(cache=True, nogil=True)
def _texel(coord, texels_per_unit):
    """Wrapped texel index (int) of a float32 coordinate."""
    return np.int32(np.floor(coord * texels_per_unit)) & NOISE_MASK


@numba.njit(cache=True, nogil=True)
def _noise(image, u, v, texels_per_unit):
    """Nearest texel of a flat noise image [NOISE_SIZE ** 2] at (u, v)."""
    return image[(_texel(v, texels_per_unit) << NOISE_SHIFT) | _texel(u, texels_per_unit)]


@numba.njit(cache=True, nogil=True)
def remainder(a, b):
    """a % b for float32 a, b (b > 0) bit for bit numpy's float32 remainder: exact in float64, rounded once."""
    b64, a64 = np.float64(b), np.float64(a)
    r = a64 - np.floor(a64 / b64) * b64
    if r < 0:
        r += b64
    return F32(r)


@numba.njit(cache=True, nogil=True)
def _sky(dx, dy, dz, colours, scalars, clouds, cloud_noise, rgb):
    """Sky colour (times exposure) of a ray direction (any length) into rgb [3] float32."""
    inv_len = ONE / np.sqrt(dx * dx + dy * dy + dz * dz)
    up = dz * inv_len  # sine of the elevation
    height = np.sqrt(min(max(up, ZERO), ONE))
    glow = dx * colours[SUN, 0] + dy * colours[SUN, 1] + dz * colours[SUN, 2]
    glow = min(max(glow * inv_len, ZERO), ONE)
    for _ in range(6):  # cos^64: a tight halo around the sun
        glow *= glow
    for c in range(3):
        rgb[c] = height * colours[SKY_GRADIENT, c] + colours[SKY_HORIZON, c] + glow * colours[HALO, c]
    if clouds:
        to_plane = inv_len / max(up, CLOUD_MIN_UP)  # onto a cloud plane one unit up
        noise = _noise(cloud_noise, dx * to_plane, dy * to_plane, CLOUD_TEXELS_PER_UNIT)
        cloud = min(max(noise * CLOUD_GAIN + scalars[CLOUD_BIAS], ZERO), ONE)
        for c in range(3):
            rgb[c] = rgb[c] * (ONE - cloud) + cloud * colours[CLOUD, c]
    for c in range(3):
        rgb[c] *= scalars[EXPOSURE]


@numba.njit(cache=True, nogil=True)
def shade_pixels(
    t, face, normal, rays, face_semantic, face_albedo, radiance, semantic_grain, semantic_facade,
    grain_noise, window_noise, cloud_noise, colours, scalars, lamp, haze, clouds, night, srgb_lut, out,
):  # fmt: skip
    """sRGB of N ray hits into out [N, 3] uint8.

    Per ray: t [N] float32 hit distance (any value on a miss), face [N] int64 face-table row (the last row on a
    miss), normal [N, 3] float32, rays [N, 6] float32 (origin, direction of any length). Per face-table row:
    face_semantic [F + 1], face_albedo [F + 1, 3], radiance [F + 1, 2, 3] (`face_radiance`: front, back side).
    Per semantic id: semantic_grain [S] float32, semantic_facade [S] bool. Noise images flat [NOISE_SIZE ** 2]
    float32. colours [COLOUR_ROWS, 3] and scalars [SCALARS] float32 (see the row names above; exposure includes the
    lookup-table scale); lamp, haze, clouds, night: which terms apply. srgb_lut [L] uint8.
    """
    miss_face = len(radiance) - 1
    lut_max = F32(len(srgb_lut) - 1)
    exposure = scalars[EXPOSURE]
    rgb = np.empty(3, np.float32)
    for i in range(len(t)):
        f = face[i]
        dx, dy, dz = rays[i, 3], rays[i, 4], rays[i, 5]
        if f == miss_face:
            _sky(dx, dy, dz, colours, scalars, clouds, cloud_noise, rgb)
        else:
            nx, ny, nz, ti = normal[i, 0], normal[i, 1], normal[i, 2], t[i]
            cos_nd = nx * dx + ny * dy + nz * dz
            side = 1 if cos_nd > ZERO else 0
            px, py, pz = dx * ti + rays[i, 0], dy * ti + rays[i, 1], dz * ti + rays[i, 2]
            wall = abs(nz) < WALL_MAX_NZ
            u = py * nx - px * ny if wall else px  # along the wall, or x on floors
            v = pz if wall else py
            semantic = face_semantic[f]
            grain = (_noise(grain_noise, u, v, GRAIN_TEXELS_PER_M) - HALF) * semantic_grain[semantic] + ONE
            window = lit = False
            if semantic_facade[semantic] and wall and v > WINDOW_MIN_Z:
                storey = remainder(v, STOREY)
                window = storey > BAND_LO and storey < BAND_HI and remainder(u, BAY) > BAY_WALL
                if window and night:
                    lit = _noise(window_noise, np.floor(u / BAY), np.floor(v / STOREY), ONE) > LIT_ABOVE
            length = np.sqrt(dx * dx + dy * dy + dz * dz)
            dist = length * ti
            for c in range(3):
                rgb[c] = radiance[f, side, c]
            if lamp:
                near = dist * scalars[LAMP_FALLOFF]
                light = scalars[HEADLIGHT] * (abs(cos_nd) / length) / (ONE + near * near)
                for c in range(3):
                    rgb[c] += face_albedo[f, c] * light
            fog = np.exp(scalars[FOG_RATE] * dist) * exposure  # fog and exposure: the surface light's factor
            scale = grain * fog
            for c in range(3):
                if window:
                    rgb[c] *= colours[TINT, c]
                rgb[c] *= scale
                if haze:
                    rgb[c] += (exposure - fog) * colours[HAZE, c]
                if lit:
                    rgb[c] += fog * colours[WINDOW_GLOW, c]
        for c in range(3):
            out[i, c] = srgb_lut[np.intp(min(max(rgb[c], ZERO), lut_max))]  # truncates
