"""How the dashcam's world looks: colours, texture and light, drawn per road from its seed.

Domain randomisation of appearance is the standard way to make a vision policy robust to what it
was not shown; holding part of it out measures that robustness. `draw_appearance(seed, kind)`
gives the look of one road:

    "plain"     the top-down camera's fixed colours (green ground, grey road, white markings),
                no texture, a pale sky;
    "train"     drawn from the training ranges (`RANGES["train"]`): grey asphalt, green verges,
                daylight;
    "held-out"  drawn from ranges that "train" can never produce (`RANGES["held-out"]`): lighter
                concrete, dry yellow-brown verges, dusk light. Brightness, contrast, asphalt
                grey and verge hue are each disjoint from the training ranges, so "no training
                frame shows a held-out look" is checkable on any one of them.

The look depends on the road seed alone (and the kind): the same road always looks the same.
`Appearance.tone` applies the global brightness and contrast to a colour; `map_colours` and
`sky_colours` give the toned colours the dashcam draws its maps and its sky with (per road, per
map redraw), never per frame. `texture_tile` is the road's periodic noise, which the dashcam lays
on the ground anchored to the world.

    look = draw_appearance(seed=3, kind="train")
    road_rgb = look.tone(look.asphalt_rgb)
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from envs.camera import GROUND_RGB, ROAD_RGB
from envs.ground import DASH_ON_M, DASH_PERIOD_M, MARKING_WIDTH_M

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
AMPLITUDE_UNIT = 8.0
"""Map colours carry the texture amplitude in alpha, in units of 1 / this [grey levels]."""

_PLAIN_SKY = ((150, 185, 225), (215, 225, 235))  # top, horizon: a pale daylight sky
# Ranges [low, high] of every drawn quantity, per kind. Hues [deg], saturations and values [0..1]
# (HSV), grey levels [0..255], texture amplitudes: standard deviation [grey levels].
RANGES = {
    "train": {
        "brightness": (0.85, 1.15),
        "contrast": (0.85, 1.15),
        "asphalt_grey": (45.0, 95.0),
        "asphalt_tint": (-4.0, 4.0),
        "asphalt_texture": (2.0, 8.0),
        "marking_brightness": (0.7, 1.0),
        "marking_wear": (0.0, 18.0),
        "grass_hue": (75.0, 135.0),
        "grass_saturation": (0.35, 0.65),
        "grass_value": (0.3, 0.55),
        "grass_texture": (4.0, 12.0),
        "sky_top_hue": (200.0, 225.0),
        "sky_top_saturation": (0.3, 0.55),
        "sky_top_value": (0.75, 0.95),
        "sky_horizon_hue": (190.0, 225.0),
        "sky_horizon_saturation": (0.03, 0.15),
        "sky_horizon_value": (0.85, 0.98),
    },
    "held-out": {
        "brightness": (0.55, 0.75),
        "contrast": (0.6, 0.8),
        "asphalt_grey": (110.0, 150.0),
        "asphalt_tint": (0.0, 8.0),
        "asphalt_texture": (4.0, 10.0),
        "marking_brightness": (0.55, 0.85),
        "marking_wear": (10.0, 28.0),
        "grass_hue": (30.0, 55.0),
        "grass_saturation": (0.35, 0.6),
        "grass_value": (0.45, 0.65),
        "grass_texture": (6.0, 14.0),
        "sky_top_hue": (225.0, 260.0),
        "sky_top_saturation": (0.35, 0.6),
        "sky_top_value": (0.45, 0.65),
        "sky_horizon_hue": (15.0, 35.0),
        "sky_horizon_saturation": (0.35, 0.6),
        "sky_horizon_value": (0.8, 0.95),
    },
}
"""What "train" and "held-out" looks are drawn from: uniform in [low, high] per quantity."""
_SALT = {"train": 0x7EA1, "held-out": 0x4E1D}  # independent draws per kind for one seed
_TEXTURE_SALT = 0x7E47
_HAZE_GROUND = 0.15  # share of the verge colour in the haze: distant ground seen through air


@dataclass(frozen=True)
class Appearance:
    """One road's look. Colours are RGB [0..255] before `tone`; amplitudes in grey levels."""

    asphalt_rgb: RGB
    """Road surface colour."""
    asphalt_texture: float
    """Standard deviation of the texture on the road surface [grey levels]."""
    marking_brightness: float
    """Lane markings: share of white over the asphalt [0..1]."""
    marking_wear: float
    """Standard deviation of the texture on the markings (worn, patchy paint) [grey levels]."""
    grass_rgb: RGB
    """Ground beside the road (verge) colour."""
    grass_texture: float
    """Standard deviation of the texture on the verge [grey levels]."""
    sky_top_rgb: RGB
    """Sky colour high above the horizon."""
    sky_horizon_rgb: RGB
    """Sky colour at the horizon."""
    haze_rgb: RGB
    """Colour that the distant ground fades into."""
    brightness: float
    """Global light: every colour is multiplied by it after the contrast [x]."""
    contrast: float
    """Global contrast about mid-grey (128) [x]."""

    @property
    def marking_rgb(self) -> RGB:
        """Lane marking colour: white over the asphalt by `marking_brightness`."""
        return mix(self.asphalt_rgb, (255, 255, 255), self.marking_brightness)

    def tone(self, rgb: RGB) -> RGB:
        """`rgb` under this look's contrast (about mid-grey) and brightness, clipped to 0..255."""
        toned = (self.brightness * (128 + self.contrast * (c - 128)) for c in rgb)
        return tuple(int(round(min(max(c, 0.0), 255.0))) for c in toned)

    def tone_amplitude(self, amplitude: float) -> float:
        """A texture amplitude [grey levels] under this look's contrast and brightness."""
        return amplitude * self.contrast * self.brightness


def map_colours(look: Appearance, far_px_per_m: float) -> tuple[tuple, tuple, RGBA]:
    """RGBA colours (ground, road, markings) of the dashcam's near and far maps, and the colour
    of the far map's solid stand-in for dashes, under `look`. Alpha: texture amplitude (near
    map only) x `AMPLITUDE_UNIT`."""

    def rgba(rgb: RGB, amplitude: float = 0.0) -> RGBA:
        alpha = min(255, round(look.tone_amplitude(amplitude) * AMPLITUDE_UNIT))
        return (*look.tone(rgb), alpha)

    asphalt, marking, grass = look.asphalt_rgb, look.marking_rgb, look.grass_rgb
    near = (
        rgba(grass, look.grass_texture),
        rgba(asphalt, look.asphalt_texture),
        rgba(marking, look.marking_wear),
    )
    # The far map's lines are at least 1 px, wider than a marking: dim them to the same light.
    cover = MARKING_WIDTH_M * far_px_per_m / max(1, round(MARKING_WIDTH_M * far_px_per_m))
    far = (rgba(grass), rgba(asphalt), rgba(mix(asphalt, marking, cover)))
    return near, far, rgba(mix(asphalt, marking, cover * DASH_ON_M / DASH_PERIOD_M))


def sky_colours(look: Appearance, elevation_deg: np.ndarray, top_deg: float) -> np.ndarray:
    """(K, 4) RGBA per elevation [deg]: the sky's gradient up to `top_deg` above the horizon,
    the haze below it; alpha 0 (no texture)."""
    t = np.clip(elevation_deg / top_deg, 0.0, 1.0) ** 0.6
    sky = [mix(look.sky_horizon_rgb, look.sky_top_rgb, x) if x > 0 else look.haze_rgb for x in t]
    return np.array([(*look.tone(rgb), 0) for rgb in sky], np.uint8).reshape(-1, 4)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """(1 - t) a + t b, rounded."""
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b, strict=True))


def _hsv(hue_deg: float, saturation: float, value: float) -> RGB:
    rgb = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value)
    return tuple(int(round(255 * c)) for c in rgb)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"appearance seed must be an integer >= 0 (the road seed), got {seed!r}")
    return int(seed)


def draw_appearance(seed: int, kind: str) -> Appearance:
    """The look of the road with seed `seed`: "plain", or drawn from a kind's `RANGES`.

    Raises:
        ValueError: an unknown kind or a seed that is not an integer >= 0.
    """
    seed = _check_seed(seed)
    if kind == "plain":
        sky_top, sky_horizon = _PLAIN_SKY
        return Appearance(
            ROAD_RGB, 0.0, 1.0, 0.0, GROUND_RGB, 0.0, sky_top, sky_horizon, sky_horizon, 1.0, 1.0
        )
    if kind not in RANGES:
        raise ValueError(f"appearance kind must be 'plain', 'train' or 'held-out', got {kind!r}")
    rng = np.random.default_rng([_SALT[kind], seed])
    draw = {name: float(rng.uniform(low, high)) for name, (low, high) in RANGES[kind].items()}
    grey, tint = draw["asphalt_grey"], draw["asphalt_tint"]
    asphalt = tuple(int(round(grey + k * tint)) for k in (1.0, 0.5, -1.0))  # warm or cool grey
    grass = _hsv(draw["grass_hue"], draw["grass_saturation"], draw["grass_value"])
    sky_top = _hsv(draw["sky_top_hue"], draw["sky_top_saturation"], draw["sky_top_value"])
    sky_horizon = _hsv(
        draw["sky_horizon_hue"], draw["sky_horizon_saturation"], draw["sky_horizon_value"]
    )
    return Appearance(
        asphalt_rgb=asphalt,
        asphalt_texture=draw["asphalt_texture"],
        marking_brightness=draw["marking_brightness"],
        marking_wear=draw["marking_wear"],
        grass_rgb=grass,
        grass_texture=draw["grass_texture"],
        sky_top_rgb=sky_top,
        sky_horizon_rgb=sky_horizon,
        haze_rgb=mix(sky_horizon, grass, _HAZE_GROUND),
        brightness=draw["brightness"],
        contrast=draw["contrast"],
    )


def texture_tile(seed: int, side_px: int = 256) -> np.ndarray:
    """The road's periodic ground texture: (side_px, side_px) float32, mean 0, std 1.

    Noise with a 1/f amplitude spectrum (blotches of many sizes, like worn asphalt and grass),
    made in the Fourier domain so that it tiles seamlessly: the dashcam wraps it around the
    world, so it must have no seam.
    """
    rng = np.random.default_rng([_TEXTURE_SALT, _check_seed(seed)])
    spectrum = np.fft.rfft2(rng.standard_normal((side_px, side_px)))
    fy = np.fft.fftfreq(side_px)[:, None]
    fx = np.fft.rfftfreq(side_px)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    tile = np.fft.irfft2(spectrum / radius**0.8, s=(side_px, side_px))
    tile -= tile.mean()
    return (tile / tile.std()).astype(np.float32)
