"""Procedural scenes: a seed → a typed `SceneSpec` (rooms or yards, objects, materials, lights, sky).

Scene coordinates are MuJoCo's: metres, x and y horizontal, z up, the floor at z = 0 and the room or
yard centred on the origin. (Trajectories use the project's world frame instead, y down; see
`geometry.SCENE_TO_WORLD`.) Every number is rounded when it is drawn, so the MJCF text, the collision
geometry and the captions all read the same values: the same seed gives the same `SceneSpec`, the same
MJCF string and the same pixels.

    spec = build_scene(7)                 # indoor or outdoor, drawn from the seed
    spec = build_scene(7, kind="outdoor")
    xml = spec.to_mjcf()                  # see mjcf.py
    spec.to_dict()["objects"]             # [{"name", "label", "colour", "size_class", "parts": [...]}]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .palette import GROUNDS, OBJECT_COLOURS, SKIES, SURFACE_COLOURS, contrast_colour, jitter, shade

KINDS = ("indoor", "outdoor")
SHAPES = ("box", "sphere", "cylinder", "capsule", "ellipsoid")
SIZE_CLASSES = {"small": (0.12, 0.28), "medium": (0.28, 0.55), "large": (0.55, 1.0)}


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _t(xs, nd: int = 4) -> tuple[float, ...]:
    return tuple(_r(x, nd) for x in xs)


@dataclass(frozen=True)
class Material:
    """A surface look. colour: its caption name; pattern: "plain" | "checkered" | "tiled" | "speckled";
    tile: the pattern's period in metres (planes)."""

    name: str
    rgb: tuple[float, float, float]
    colour: str = ""
    pattern: str = "plain"
    rgb2: tuple[float, float, float] | None = None
    tile: float = 1.0
    specular: float = 0.3
    shininess: float = 0.3
    reflectance: float = 0.0
    emission: float = 0.0


@dataclass(frozen=True)
class Primitive:
    """One MuJoCo geom in scene coordinates.

    size: MuJoCo's geom size: box half-extents (3); sphere (radius,); cylinder and capsule (radius,
    half-length of the axis); ellipsoid semi-axes (3). The local frame is turned by `lying` (the local
    z axis laid along scene x) and then by `yaw_deg` about the vertical.
    """

    shape: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    material: str
    yaw_deg: float = 0.0
    lying: bool = False

    def rotation(self) -> np.ndarray:
        """(3, 3) local-to-scene rotation (columns: the local axes in scene coordinates)."""
        c, s = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        yaw = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        if not self.lying:
            return yaw
        lay = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # local z -> scene x
        return yaw @ lay

    def half_extents(self) -> np.ndarray:
        """(3,) half-extents of the primitive along its local axes (x, y, z)."""
        s = self.size
        if self.shape == "sphere":
            return np.array([s[0]] * 3)
        if self.shape == "cylinder":
            return np.array([s[0], s[0], s[1]])
        if self.shape == "capsule":
            return np.array([s[0], s[0], s[1] + s[0]])
        return np.array(s[:3])

    def scene_half_extents(self) -> np.ndarray:
        """(3,) half-extents of the axis-aligned box (scene frame) around the primitive."""
        return np.abs(self.rotation()) @ self.half_extents()


@dataclass(frozen=True)
class SceneObject:
    """Something a caption can name, made of one or more primitives.

    label: the caption noun (cube, box, ball, sphere, cylinder, pillar, capsule, ellipsoid, tree, fence,
    building, marker). role: "object" (captioned one by one), "tree", "fence", "backdrop" (buildings
    outside a yard) or "marker" (test markers, never captioned).
    """

    name: str
    label: str
    colour: str
    size_class: str
    role: str
    parts: tuple[Primitive, ...]

    @property
    def position(self) -> tuple[float, float, float]:
        return self.parts[0].pos


@dataclass(frozen=True)
class Light:
    """kind "spot" (pos, dir, cutoff, exponent) or "directional" (dir only matters)."""

    kind: str
    pos: tuple[float, float, float]
    dir: tuple[float, float, float]
    diffuse: tuple[float, float, float]
    specular: tuple[float, float, float] = (0.2, 0.2, 0.2)
    castshadow: bool = False
    cutoff: float = 80.0
    exponent: float = 2.0


@dataclass(frozen=True)
class SceneSpec:
    """A whole scene. bounds: (x0, x1, y0, y1) of the room interior or of the yard (metres)."""

    seed: int
    kind: str
    bounds: tuple[float, float, float, float]
    floor: Material
    sky: str
    sky_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    ambient: float
    lights: tuple[Light, ...]
    objects: tuple[SceneObject, ...]
    materials: tuple[Material, ...]
    wall: Material | None = None
    ceiling: Material | None = None
    ceiling_height: float | None = None
    room_height: float | None = None
    ground: str | None = None
    fence: bool = False

    @property
    def walls(self) -> bool:
        """Indoor rooms have four walls; yards have none (a fence is an object)."""
        return self.kind == "indoor"

    def primitives(self) -> list[tuple[SceneObject, Primitive]]:
        return [(obj, part) for obj in self.objects for part in obj.parts]

    def material(self, name: str) -> Material:
        for m in (self.floor, self.wall, self.ceiling, *self.materials):
            if m is not None and m.name == name:
                return m
        raise KeyError(f"scene {self.seed} has no material {name!r}")

    def with_marker(self, pos, radius: float = 0.03, rgb=(1.0, 0.0, 1.0), name: str = "marker") -> SceneSpec:
        """A copy with a small emissive sphere at `pos` (scene coordinates), e.g. for geometry tests."""
        material = Material(
            f"mat_{name}", tuple(float(c) for c in rgb), "magenta", specular=0.0, emission=1.0
        )
        part = Primitive("sphere", (float(radius),), tuple(float(c) for c in pos), material.name)
        marker = SceneObject(name, "marker", "magenta", "small", "marker", (part,))
        return replace(self, objects=(*self.objects, marker), materials=(*self.materials, material))

    def to_mjcf(self, max_size: tuple[int, int] = (640, 640)) -> str:
        """The MuJoCo XML of the scene; `max_size` (H, W) sizes the offscreen framebuffer."""
        from .mjcf import scene_to_mjcf

        return scene_to_mjcf(self, max_size)

    def to_dict(self) -> dict:
        """A JSON-serialisable description (the object list has shape, size, colour name, position)."""
        return asdict(self)

    def summary(self) -> dict:
        """The machine-readable object list in short form, for clip metadata."""
        return {
            "seed": self.seed,
            "kind": self.kind,
            "bounds": list(self.bounds),
            "ceiling_height": self.ceiling_height,
            "frame": "scene: metres, z up (world = SCENE_TO_WORLD @ scene, y down)",
            "objects": [
                {
                    "name": o.name,
                    "label": o.label,
                    "colour": o.colour,
                    "size_class": o.size_class,
                    "role": o.role,
                    "parts": [
                        {"shape": p.shape, "size": list(p.size), "pos": list(p.pos), "yaw_deg": p.yaw_deg,
                         "lying": p.lying}
                        for p in o.parts
                    ],
                }
                for o in self.objects
            ],
        }  # fmt: skip


# --- sampling ---------------------------------------------------------------------------------------


def _choice(rng: np.random.Generator, options, weights=None):
    options = list(options)
    p = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]


def _surface(rng, name: str, colour: str, patterns, weights, tile_range, reflectance=0.0) -> Material:
    rgb = jitter(SURFACE_COLOURS[colour], rng, 0.03)
    pattern = _choice(rng, patterns, weights)
    rgb2 = {"checkered": contrast_colour(rgb), "speckled": shade(rgb, 0.8)}.get(pattern, shade(rgb, 0.55))
    if pattern == "checkered" and rng.random() < 0.5:  # a second palette colour instead of a shade
        rgb2 = jitter(SURFACE_COLOURS[_choice(rng, SURFACE_COLOURS)], rng, 0.03)
    return Material(
        name=name,
        rgb=rgb,
        colour=colour,
        pattern=pattern,
        rgb2=rgb2,
        tile=_r(rng.uniform(*tile_range), 3),
        specular=_r(rng.uniform(0.05, 0.4), 3),
        shininess=_r(rng.uniform(0.1, 0.6), 3),
        reflectance=reflectance,
    )


def _object_shape(rng, name: str, scale: float) -> tuple[str, str, tuple[float, ...], bool]:
    """(label, shape, size, lying) for an object of characteristic size `scale` (metres)."""
    shape = _choice(rng, SHAPES, (0.32, 0.2, 0.2, 0.13, 0.15))
    if shape == "box":
        if rng.random() < 0.45:
            return "cube", "box", _t([scale] * 3), False
        return "box", "box", _t(scale * rng.uniform(0.55, 1.6, size=3)), False
    if shape == "sphere":
        return _choice(rng, ("sphere", "ball")), "sphere", (_r(scale),), False
    if shape == "cylinder":
        radius, half = scale * rng.uniform(0.45, 0.9), scale * rng.uniform(0.6, 2.2)
        lying = bool(rng.random() < 0.2)
        label = "pillar" if not lying and 2 * half > 1.4 and half > 2.5 * radius else "cylinder"
        return label, "cylinder", _t([radius, half]), lying
    if shape == "capsule":
        radius, half = scale * rng.uniform(0.35, 0.7), scale * rng.uniform(0.5, 1.4)
        return "capsule", "capsule", _t([radius, half]), bool(rng.random() < 0.4)
    return "ellipsoid", "ellipsoid", _t(scale * rng.uniform(0.55, 1.4, size=3)), False


def _object_material(rng, name: str) -> tuple[str, Material]:
    colour = _choice(rng, OBJECT_COLOURS)
    rgb = jitter(OBJECT_COLOURS[colour], rng)
    pattern = "checkered" if rng.random() < 0.2 else "plain"
    material = Material(
        name=name,
        rgb=rgb,
        colour=colour,
        pattern=pattern,
        rgb2=contrast_colour(rgb) if pattern != "plain" else None,
        specular=_r(rng.uniform(0.05, 0.9), 3),
        shininess=_r(rng.uniform(0.05, 0.95), 3),
    )
    return colour, material


class _Placer:
    """Rejection sampling of non-overlapping footprints (circles) inside a rectangle."""

    def __init__(self, bounds, gap: float):
        self.bounds, self.gap, self.taken = bounds, gap, []

    def place(self, rng, radius: float, tries: int = 60, keep_out: float = 0.0):
        x0, x1, y0, y1 = self.bounds
        margin = radius + self.gap + keep_out
        if x1 - x0 <= 2 * margin or y1 - y0 <= 2 * margin:
            return None
        for _ in range(tries):
            x, y = rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin)
            if all(math.hypot(x - a, y - b) >= radius + r + self.gap for a, b, r in self.taken):
                self.taken.append((x, y, radius))
                return x, y
        return None


def _sample_objects(rng, placer: _Placer, count: int, large_bias: float) -> tuple[list, list]:
    """Up to `count` objects that fit; a draw that finds no room is redrawn smaller (<= 4·count draws)."""
    objects, materials = [], []
    weights = np.array([0.4, 0.4 - large_bias / 2, 0.2 + large_bias / 2])
    failures = 0
    for _ in range(4 * count):
        if len(objects) == count:
            break
        name = f"obj{len(objects):02d}"
        w = weights if failures == 0 else weights * np.array([1.0, 0.5, 0.1]) ** min(failures, 3)
        size_class = _choice(rng, SIZE_CLASSES, w)
        scale = rng.uniform(*SIZE_CLASSES[size_class])
        label, shape, size, lying = _object_shape(rng, name, scale)
        colour, material = _object_material(rng, f"mat_{name}")
        yaw = _r(rng.uniform(0.0, 180.0), 2)
        probe = Primitive(shape, size, (0.0, 0.0, 0.0), material.name, yaw, lying)
        half = probe.scene_half_extents()
        spot = placer.place(rng, float(math.hypot(half[0], half[1])))
        if spot is None:
            failures += 1
            continue
        failures = 0
        pos = _t([spot[0], spot[1], half[2]])
        part = replace(probe, pos=pos)
        objects.append(SceneObject(name, label, colour, size_class, "object", (part,)))
        materials.append(material)
    return objects, materials


def _indoor(seed: int, rng: np.random.Generator) -> SceneSpec:
    wx, wy = rng.uniform(6.0, 13.0), rng.uniform(6.0, 13.0)
    height = _r(rng.uniform(2.7, 4.0), 3)
    has_ceiling = bool(rng.random() < 0.75)
    bounds = _t([-wx / 2, wx / 2, -wy / 2, wy / 2], 3)
    floor_colour = _choice(rng, SURFACE_COLOURS)
    floor = _surface(
        rng, "floor", floor_colour, ("checkered", "tiled", "plain", "speckled"), (0.35, 0.3, 0.1, 0.25),
        (0.3, 1.0), reflectance=_r(rng.uniform(0.1, 0.25), 3) if rng.random() < 0.25 else 0.0,
    )  # fmt: skip
    wall_colour = _choice(rng, [c for c in SURFACE_COLOURS if c != floor_colour])
    wall = _surface(
        rng, "wall", wall_colour, ("plain", "speckled", "tiled", "checkered"), (0.35, 0.35, 0.2, 0.1),
        (0.4, 1.5),
    )  # fmt: skip
    ceiling = _surface(rng, "ceiling", _choice(rng, ("white", "cream", "grey")), ("plain",), None, (1, 1))
    sky = _choice(rng, SKIES)
    zenith, horizon, sun_rgb, elev = SKIES[sky]

    lamp_z = height - 0.05 if has_ceiling else height + 0.5
    n_lamps = int(rng.integers(1, 4))
    lights = []
    for k in range(n_lamps):
        x = rng.uniform(bounds[0] * 0.6, bounds[1] * 0.6)
        y = rng.uniform(bounds[2] * 0.6, bounds[3] * 0.6)
        level = rng.uniform(0.55, 0.85) / math.sqrt(n_lamps)
        warm = rng.uniform(-0.08, 0.08)
        rgb = _t([level + warm, level, level - warm], 3)
        cutoff, exponent = _r(rng.uniform(60, 80), 2), _r(rng.uniform(0.5, 3), 2)
        shadow = k == 0 and has_ceiling
        lights.append(
            Light(
                "spot",
                _t([x, y, lamp_z]),
                (0.0, 0.0, -1.0),
                rgb,
                castshadow=shadow,
                cutoff=cutoff,
                exponent=exponent,
            )
        )
    if not has_ceiling:  # the sun casts the shadows (one shadow-casting light a scene keeps rendering fast)
        lights.append(_sun(rng, sun_rgb, elev, castshadow=True, scale=0.6))

    placer = _Placer(bounds, gap=rng.uniform(0.35, 0.7))
    area = wx * wy
    count = int(np.clip(round(area * rng.uniform(0.07, 0.16)), 5, 16))
    objects, materials = _sample_objects(rng, placer, count, large_bias=0.0)
    return SceneSpec(
        seed=seed,
        kind="indoor",
        bounds=bounds,
        floor=floor,
        sky=sky,
        sky_rgb=(jitter(zenith, rng, 0.03), jitter(horizon, rng, 0.03)),
        ambient=_r(rng.uniform(0.22, 0.38), 3),
        lights=tuple(lights),
        objects=tuple(objects),
        materials=tuple(materials),
        wall=wall,
        ceiling=ceiling if has_ceiling else None,
        ceiling_height=height if has_ceiling else None,
        room_height=height,
    )


def _sun(rng, rgb, elevation_range, castshadow: bool, scale: float = 1.0) -> Light:
    elev = math.radians(rng.uniform(*elevation_range))
    azim = rng.uniform(0.0, 2.0 * math.pi)
    direction = -np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)])
    pos = -direction * 30.0
    return Light(
        "directional", _t(pos, 3), _t(direction), _t(np.asarray(rgb) * scale, 3), castshadow=castshadow
    )


def _backdrop(rng, hx: float, hy: float) -> tuple[list, list]:
    """Buildings around the yard, well outside it, so every view direction has something in it."""
    objects, materials = [], []
    n = int(rng.integers(5, 11))
    start = rng.uniform(0, 2 * np.pi)
    for k in range(n):
        angle = start + 2 * np.pi * (k + rng.uniform(-0.3, 0.3)) / n
        half = _t([rng.uniform(2.0, 5.0), rng.uniform(2.0, 4.0), rng.uniform(1.5, 5.0)])
        dist = max(hx, hy) * rng.uniform(1.6, 2.6) + half[0]
        colour = _choice(rng, ("beige", "grey", "white", "terracotta", "tan", "light blue", "cream"))
        mat = Material(
            f"mat_building{k}", jitter(SURFACE_COLOURS[colour], rng, 0.04), colour,
            "tiled" if rng.random() < 0.5 else "plain", shade(SURFACE_COLOURS[colour], 0.7),
            tile=_r(rng.uniform(0.8, 1.6), 3), specular=0.1, shininess=0.2,
        )  # fmt: skip
        pos = _t([dist * math.cos(angle), dist * math.sin(angle), half[2]])
        yaw = _r(math.degrees(angle) + rng.uniform(-15, 15), 2)
        part = Primitive("box", half, pos, mat.name, yaw)
        objects.append(SceneObject(f"building{k}", "building", colour, "large", "backdrop", (part,)))
        materials.append(mat)
    return objects, materials


def _outdoor(seed: int, rng: np.random.Generator) -> SceneSpec:
    hx, hy = rng.uniform(5.0, 10.0), rng.uniform(5.0, 10.0)
    bounds = _t([-hx, hx, -hy, hy], 3)
    ground = _choice(rng, GROUNDS)
    g1, g2 = GROUNDS[ground]
    pattern = "checkered" if ground == "paved" and rng.random() < 0.5 else "speckled"
    if ground == "paved" and pattern == "speckled":
        pattern = "tiled"
    floor = Material(
        "floor", jitter(g1, rng, 0.03), ground, pattern, jitter(g2, rng, 0.03),
        tile=_r(rng.uniform(0.6, 1.5), 3), specular=_r(rng.uniform(0.02, 0.15), 3), shininess=0.1,
    )  # fmt: skip
    sky = _choice(rng, SKIES, (0.45, 0.2, 0.2, 0.15))
    zenith, horizon, sun_rgb, elev = SKIES[sky]
    lights = [
        _sun(rng, sun_rgb, elev, castshadow=True),
        Light("directional", (0.0, 0.0, 30.0), (0.0, 0.0, -1.0), (0.18, 0.18, 0.2)),
    ]
    placer = _Placer(bounds, gap=rng.uniform(0.5, 1.0))
    objects, materials = [], []

    fence = bool(rng.random() < 0.6)
    if fence:
        colour = _choice(rng, ("white", "brown", "grey"))
        mat = Material(
            "mat_fence", jitter(OBJECT_COLOURS[colour], rng, 0.03), colour, specular=0.1, shininess=0.2
        )
        half_h = _r(rng.uniform(0.5, 0.8), 3)
        t = 0.04
        parts = (
            Primitive("box", _t([hx + t, t, half_h]), _t([0.0, hy + t, half_h]), mat.name),
            Primitive("box", _t([hx + t, t, half_h]), _t([0.0, -hy - t, half_h]), mat.name),
            Primitive("box", _t([t, hy + t, half_h]), _t([hx + t, 0.0, half_h]), mat.name),
            Primitive("box", _t([t, hy + t, half_h]), _t([-hx - t, 0.0, half_h]), mat.name),
        )
        objects.append(SceneObject("fence", "fence", colour, "large", "fence", parts))
        materials.append(mat)

    n_trees = int(rng.integers(1, 6)) if rng.random() < 0.6 else 0
    trunk = Material("mat_trunk", jitter(OBJECT_COLOURS["brown"], rng, 0.03), specular=0.05, shininess=0.1)
    leaves = Material("mat_leaves", jitter((0.15, 0.42, 0.14), rng, 0.05), specular=0.05, shininess=0.1)
    for k in range(n_trees):
        crown = rng.uniform(0.8, 1.5)
        spot = placer.place(rng, crown)
        if spot is None:
            continue
        trunk_r, trunk_h = rng.uniform(0.1, 0.22), rng.uniform(0.9, 1.6)
        crown_z = 2 * trunk_h + 0.6 * crown
        parts = (
            Primitive("cylinder", _t([trunk_r, trunk_h]), _t([spot[0], spot[1], trunk_h]), trunk.name),
            Primitive(
                "ellipsoid", _t([crown, crown, crown * rng.uniform(0.9, 1.4)]),
                _t([spot[0], spot[1], crown_z]), leaves.name,
            ),
        )  # fmt: skip
        objects.append(SceneObject(f"tree{k}", "tree", "green", "large", "tree", parts))
    if n_trees:
        materials += [trunk, leaves]

    count = int(rng.integers(10, 25))
    more, more_materials = _sample_objects(rng, placer, count, large_bias=0.3)
    far, far_materials = _backdrop(rng, hx, hy)
    return SceneSpec(
        seed=seed,
        kind="outdoor",
        bounds=bounds,
        floor=floor,
        sky=sky,
        sky_rgb=(jitter(zenith, rng, 0.03), jitter(horizon, rng, 0.03)),
        ambient=_r(rng.uniform(0.3, 0.42), 3),
        lights=tuple(lights),
        objects=tuple(objects + more + far),
        materials=tuple(materials + more_materials + far_materials),
        ground=ground,
        fence=fence,
    )


def build_scene(seed: int, kind: str | None = None) -> SceneSpec:
    """The scene of `seed`: an indoor room or an outdoor yard (drawn from the seed unless `kind` is given).

    The same (seed, kind) always gives an identical `SceneSpec`; `kind` only picks the generator, so
    build_scene(s) equals build_scene(s, kind=build_scene(s).kind).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"scene seed must be a whole number >= 0, got {seed!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)} (or None: either)")
    seed = int(seed)
    rng = np.random.default_rng([seed, 1])
    drawn = "indoor" if rng.random() < 0.5 else "outdoor"
    kind = kind or drawn
    return _indoor(seed, rng) if kind == "indoor" else _outdoor(seed, rng)


__all__ = ["KINDS", "SHAPES", "Light", "Material", "Primitive", "SceneObject", "SceneSpec", "build_scene"]
