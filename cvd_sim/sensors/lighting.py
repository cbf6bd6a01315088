"""Sky and lighting from the scene text: time of day (day, dusk, night) and weather (clear, cloudy, rain)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lighting:
    """Colours are linear RGB [3]; sun_direction points towards the sun (world, unit)."""

    time_of_day: str
    weather: str
    sun_direction: np.ndarray
    sun_colour: np.ndarray
    ambient: np.ndarray
    headlight: float  # strength of a light at the camera (lamps at night)
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    haze_colour: np.ndarray
    haze_density: float  # per metre
    cloud_cover: float  # 0..1
    exposure: float


_DAY_SUN = np.array([0.45, 0.30, 0.84])
_DUSK_SUN = np.array([0.90, 0.30, 0.12])
_NIGHT_SUN = np.array([-0.3, 0.4, 0.87])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def lighting_from_text(text: str) -> Lighting:
    """Lighting that fits a caption such as "Night, rain, busy intersection" (day and clear by default)."""
    t = text.lower()
    if re.search(r"\bnight|\bdark", t):
        time = "night"
    elif re.search(r"\bdusk|\bsunset|\bdawn|\bsunrise|\bevening|\btwilight", t):
        time = "dusk"
    else:
        time = "day"
    if re.search(r"\brain|\bstorm|\bwet|\bdrizzle|\bshower", t):
        weather = "rain"
    elif re.search(r"\bcloud|\bovercast|\bfog|\bmist|\bsnow|\bgr[ae]y sky", t):
        weather = "cloudy"
    else:
        weather = "clear"
    base = {
        "day": dict(sun=_DAY_SUN, sun_c=(1.0, 0.96, 0.88), amb=(0.42, 0.45, 0.50), zen=(0.22, 0.42, 0.80),
                    hor=(0.68, 0.78, 0.90), head=0.0, exp=1.0),
        "dusk": dict(sun=_DUSK_SUN, sun_c=(1.0, 0.55, 0.25), amb=(0.30, 0.26, 0.30), zen=(0.20, 0.22, 0.45),
                     hor=(0.95, 0.55, 0.30), head=0.3, exp=1.15),
        "night": dict(sun=_NIGHT_SUN, sun_c=(0.10, 0.12, 0.18), amb=(0.03, 0.03, 0.045), zen=(0.01, 0.01, 0.03),
                      hor=(0.04, 0.04, 0.07), head=1.0, exp=1.2),
    }[time]  # fmt: skip
    sun_c, amb = np.array(base["sun_c"]), np.array(base["amb"])
    zen, hor = np.array(base["zen"]), np.array(base["hor"])
    haze_density, cloud = 0.002, 0.0
    if weather != "clear":
        grey = hor.mean()
        zen, hor = zen * 0.35 + grey * 0.5, hor * 0.35 + grey * 0.55
        sun_c, amb = sun_c * 0.25, amb * 1.15
        haze_density, cloud = (0.012, 0.55) if weather == "cloudy" else (0.03, 0.8)
    if weather == "rain":
        sun_c, amb, zen, hor = sun_c * 0.7, amb * 0.75, zen * 0.8, hor * 0.8
    f32 = np.float32
    return Lighting(
        time_of_day=time,
        weather=weather,
        sun_direction=_unit(base["sun"]).astype(f32),
        sun_colour=sun_c.astype(f32),
        ambient=amb.astype(f32),
        headlight=base["head"],
        sky_zenith=zen.astype(f32),
        sky_horizon=hor.astype(f32),
        haze_colour=(hor * 0.9).astype(f32),
        haze_density=haze_density,
        cloud_cover=cloud,
        exposure=base["exp"],
    )
