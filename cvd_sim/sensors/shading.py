"""Shading of ray hits: Lambert + ambient (precomputed per face side), lamp light, texture, haze, sky -> sRGB.

The per-pixel work is the compiled kernel `shading_kernel.shade_pixels`; this module prepares its tables.
"""

from __future__ import annotations

import numpy as np

from cvd_sim.sensors import shading_kernel as kernel
from cvd_sim.sensors.lighting import Lighting
from cvd_sim.sensors.mesh_set import MeshSet
from cvd_sim.sensors.parallel import for_row_chunks
from cvd_sim.sensors.radiance_kernel import face_normals, side_radiance
from cvd_sim.sensors.raycaster import Hits
from cvd_sim.sensors.texture import (
    SEMANTIC_FACADE,
    SEMANTIC_GRAIN,
    WINDOW_LIGHT,
    WINDOW_TINT,
    noise_image,
)

LAMP_RANGE = 8.0  # metres at which the camera-side lamp light has fallen to half
_LUT_SIZE = 4096
SRGB_LUT = (np.linspace(0.0, 1.0, _LUT_SIZE) ** (1 / 2.2) * 255 + 0.5).astype(
    np.uint8
)  # linear -> 8-bit sRGB


def face_radiance(mesh: MeshSet, lighting: Lighting) -> np.ndarray:
    """Sun + ambient light reflected by each face, seen from its front and back side -> [F, 2, 3] float32."""
    cos_sun = face_normals(mesh.vertices, mesh.faces) @ lighting.sun_direction
    return side_radiance(cos_sun, mesh.face_albedo, lighting.ambient, lighting.sun_colour)


def _kernel_lighting(lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's colours [COLOUR_ROWS, 3] and scalars [SCALARS] float32 for a lighting."""
    colours = np.empty((kernel.COLOUR_ROWS, 3), np.float32)
    colours[kernel.SUN] = lighting.sun_direction
    colours[kernel.HALO] = lighting.sun_colour * np.float32(0.6)
    colours[kernel.SKY_GRADIENT] = lighting.sky_zenith - lighting.sky_horizon
    colours[kernel.SKY_HORIZON] = lighting.sky_horizon
    colours[kernel.HAZE] = lighting.haze_colour
    colours[kernel.CLOUD] = lighting.haze_colour * np.float32(1.1)
    colours[kernel.TINT] = WINDOW_TINT
    colours[kernel.WINDOW_GLOW] = WINDOW_LIGHT
    scalars = np.empty(kernel.SCALARS, np.float32)
    scalars[kernel.HEADLIGHT] = lighting.headlight
    scalars[kernel.LAMP_FALLOFF] = 1 / LAMP_RANGE
    scalars[kernel.FOG_RATE] = -lighting.haze_density
    scalars[kernel.EXPOSURE] = lighting.exposure * (_LUT_SIZE - 1)  # exposure and the lookup-table scale
    scalars[kernel.CLOUD_BIAS] = lighting.cloud_cover - 0.8
    return colours, scalars


def shade(
    hits: Hits, rays: np.ndarray, lighting: Lighting, radiance: np.ndarray, nthreads: int = 1
) -> np.ndarray:
    """Colour [..., 3] uint8 sRGB of the hits of rays [..., 6] float32 (world, any direction length).

    radiance [F + 1, 2, 3]: `face_radiance` of the caster's face table (static, agents, then a zero miss row).
    Contiguous chunks of rays are shaded on up to `nthreads` threads (0 = all cores); the result does not
    depend on the thread count.
    """
    shape = hits.t.shape
    t, face = hits.t.reshape(-1), hits.face.reshape(-1)
    normal, rays = hits.normal.reshape(-1, 3), np.ascontiguousarray(rays, np.float32).reshape(-1, 6)
    caster = hits.caster
    colours, scalars = _kernel_lighting(lighting)
    noise = [noise_image(seed).reshape(-1) for seed in (1, 3, 7)]  # grain, lit windows, clouds
    out = np.empty((len(t), 3), np.uint8)

    def rows(s: slice) -> None:
        kernel.shade_pixels(
            t[s], face[s], normal[s], rays[s], caster.face_semantic, caster.face_albedo, radiance,
            SEMANTIC_GRAIN, SEMANTIC_FACADE, *noise, colours, scalars, lighting.headlight > 0,
            lighting.haze_density > 0, lighting.cloud_cover > 0, lighting.time_of_day == "night", SRGB_LUT,
            out[s],
        )  # fmt: skip

    for_row_chunks(rows, len(t), nthreads)
    return out.reshape(*shape, 3)
