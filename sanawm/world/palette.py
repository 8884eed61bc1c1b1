"""Named colours and surface styles for procedural scenes; every colour has the name captions use.

Colours are linear RGB in [0, 1]. A scene jitters each colour slightly (`jitter`) so two "red" objects
are not identical, but never so far that the name stops fitting. Magenta is kept out of the palette:
tests use it for markers.
"""

from __future__ import annotations

import numpy as np

# Object colours: name -> RGB.
OBJECT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.10, 0.08),
    "orange": (0.92, 0.45, 0.08),
    "yellow": (0.93, 0.80, 0.12),
    "green": (0.16, 0.58, 0.20),
    "teal": (0.06, 0.52, 0.52),
    "blue": (0.12, 0.28, 0.80),
    "purple": (0.45, 0.18, 0.62),
    "pink": (0.93, 0.52, 0.66),
    "white": (0.90, 0.90, 0.88),
    "black": (0.07, 0.07, 0.08),
    "grey": (0.48, 0.48, 0.50),
    "brown": (0.42, 0.26, 0.12),
}

# Floor, wall and ceiling colours: name -> RGB.
SURFACE_COLOURS: dict[str, tuple[float, float, float]] = {
    "beige": (0.84, 0.76, 0.60),
    "grey": (0.55, 0.55, 0.56),
    "dark grey": (0.28, 0.28, 0.30),
    "white": (0.88, 0.88, 0.86),
    "cream": (0.93, 0.89, 0.76),
    "brown": (0.45, 0.30, 0.17),
    "terracotta": (0.72, 0.38, 0.25),
    "sage green": (0.55, 0.64, 0.50),
    "light blue": (0.60, 0.72, 0.84),
    "tan": (0.74, 0.60, 0.42),
}

# Outdoor ground: caption word -> (RGB, second RGB for speckles/checks).
GROUNDS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "grassy": ((0.25, 0.48, 0.18), (0.18, 0.36, 0.12)),
    "sandy": ((0.80, 0.72, 0.52), (0.70, 0.62, 0.44)),
    "dirt": ((0.46, 0.34, 0.22), (0.36, 0.26, 0.16)),
    "paved": ((0.55, 0.55, 0.54), (0.40, 0.40, 0.40)),
    "gravel": ((0.62, 0.60, 0.56), (0.45, 0.44, 0.42)),
}

# Skies: caption word -> (zenith RGB, horizon RGB, sun diffuse RGB, sun elevation range in degrees).
SKIES: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], tuple[float, float]]] = {
    "sunny": ((0.20, 0.42, 0.85), (0.72, 0.84, 0.95), (0.95, 0.92, 0.85), (40.0, 70.0)),
    "hazy": ((0.50, 0.62, 0.78), (0.85, 0.86, 0.86), (0.80, 0.80, 0.78), (35.0, 65.0)),
    "overcast": ((0.55, 0.57, 0.60), (0.78, 0.79, 0.80), (0.55, 0.56, 0.58), (50.0, 80.0)),
    "evening": ((0.22, 0.26, 0.55), (0.95, 0.62, 0.35), (0.95, 0.70, 0.45), (12.0, 25.0)),
}

# Surface patterns: caption adjective ("" for plain) and the MuJoCo builtin texture that draws it.
PATTERNS: dict[str, str] = {
    "plain": "",
    "checkered": "checkered",
    "tiled": "tiled",
    "speckled": "speckled",
    "striped": "striped",
}


def jitter(rgb: tuple[float, ...], rng: np.random.Generator, amount: float = 0.04) -> tuple[float, ...]:
    """The colour with each channel moved by up to ±amount (clipped to [0, 1]), rounded to 3 decimals."""
    out = np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, size=3), 0.0, 1.0)
    return tuple(round(float(c), 3) for c in out)


def shade(rgb: tuple[float, ...], factor: float) -> tuple[float, ...]:
    """The colour scaled by `factor` (darker below 1, lighter above), clipped and rounded."""
    return tuple(round(float(min(1.0, max(0.0, c * factor))), 3) for c in rgb)


def contrast_colour(rgb: tuple[float, ...]) -> tuple[float, ...]:
    """A second colour for a two-tone pattern: darker for light colours, lighter for dark ones."""
    return shade(rgb, 0.6 if sum(rgb) / 3 > 0.45 else 1.7)
