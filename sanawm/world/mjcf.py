"""`SceneSpec` → MuJoCo XML (MJCF). A pure function of the spec: same spec, same string.

Rendering choices written down here:
- No headlight diffuse or specular: the headlight is pure ambient, so lighting never depends on where
  the camera is (the scene looks the same from every pose, as a world should).
- Near/far clipping planes are fixed in metres (`NEAR`, and `FAR_*` per scene kind) by setting the model
  extent explicitly; the renderer converts its depth buffer back to metres with the same planes.
- Walls, ceiling and floor are planes facing into the room (2D textures repeat per metre); objects are
  primitives with colour materials, some with checkered cube textures. Geoms have no collision role.
"""

from __future__ import annotations

from .scene import Material, SceneSpec

NEAR = 0.05  # metres: the near clipping plane (path clearance keeps the camera well beyond it)
FAR_INDOOR, FAR_OUTDOOR = 100.0, 500.0  # metres: the far clipping plane
OUTDOOR_GROUND_HALF = 200.0  # metres: half-size of the outdoor ground plane
# Render subdivisions of planes (metres). MuJoCo lights per vertex, so spotlit indoor planes need a fine
# grid; outdoors only directional light falls on the ground, and a coarse grid keeps the quad count low.
GRID_INDOOR, GRID_OUTDOOR = 0.5, 10.0
SHADOW_SIZE = 1024  # shadow map texels (MuJoCo's default 4096 costs much more on CPU renderers)
OFFSAMPLES = 4  # multisample anti-aliasing


def _f(x: float) -> str:
    s = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _v(xs) -> str:
    return " ".join(_f(x) for x in xs)


def extent(spec: SceneSpec) -> float:
    """The model extent (metres) MuJoCo scales its clipping planes and shadow volumes by."""
    x0, x1, y0, y1 = spec.bounds
    half = max(x1 - x0, y1 - y0) / 2
    return round(1.25 * half + 1.0, 3)


def far_plane(spec: SceneSpec) -> float:
    return FAR_INDOOR if spec.kind == "indoor" else FAR_OUTDOOR


def _texture_and_material(m: Material, kind: str) -> tuple[list[str], str]:
    """Asset lines (texture + material) for material `m`; kind "2d" (planes) or "cube" (objects)."""
    lines = []
    attrs = f'specular="{_f(m.specular)}" shininess="{_f(m.shininess)}"'
    if m.reflectance:
        attrs += f' reflectance="{_f(m.reflectance)}"'
    if m.emission:
        attrs += f' emission="{_f(m.emission)}"'
    if m.pattern == "plain":
        return lines, f'<material name="{m.name}" rgba="{_v(m.rgb)} 1" {attrs}/>'
    tex = f"tex_{m.name}"
    rgb2 = m.rgb2 or m.rgb
    if m.pattern == "checkered":
        spec, px, period = f'builtin="checker" rgb1="{_v(m.rgb)}" rgb2="{_v(rgb2)}"', 128, 2 * m.tile
    elif m.pattern == "tiled":
        spec = f'builtin="flat" rgb1="{_v(m.rgb)}" mark="edge" markrgb="{_v(rgb2)}"'
        px, period = 48, m.tile
    elif m.pattern == "speckled":
        spec = f'builtin="flat" rgb1="{_v(m.rgb)}" mark="random" random="0.1" markrgb="{_v(rgb2)}"'
        px, period = 64, m.tile
    else:
        raise ValueError(f"material {m.name!r} has unknown pattern {m.pattern!r}")
    lines.append(f'<texture name="{tex}" type="{kind}" {spec} width="{px}" height="{px}"/>')
    if kind == "2d":
        repeat = 1.0 / period
        tex_attrs = f'texture="{tex}" texrepeat="{_f(repeat)} {_f(repeat)}" texuniform="true"'
    else:
        tex_attrs = f'texture="{tex}" texuniform="true"'
    return lines, f'<material name="{m.name}" {tex_attrs} {attrs}/>'


def _plane(name: str, material: str, pos, half_x: float, half_y: float, xyaxes, grid: float) -> str:
    """A plane facing along xyaxes' x × y; `grid`: the spacing of its render subdivisions (metres)."""
    return (
        f'<geom name="{name}" type="plane" material="{material}" pos="{_v(pos)}" '
        f'size="{_f(half_x)} {_f(half_y)} {_f(grid)}" xyaxes="{_v(xyaxes)}"/>'
    )


def scene_to_mjcf(spec: SceneSpec, max_size: tuple[int, int] = (640, 640)) -> str:
    """The MJCF text of `spec`; the offscreen framebuffer is at least `max_size` = (H, W) pixels."""
    h, w = (max(640, int(s)) for s in max_size)
    ext = extent(spec)
    zenith, horizon = spec.sky_rgb
    assets = [
        f'<texture name="sky" type="skybox" builtin="gradient" rgb1="{_v(zenith)}" rgb2="{_v(horizon)}" '
        'width="256" height="1536"/>'
    ]
    surfaces = [m for m in (spec.floor, spec.wall, spec.ceiling) if m is not None]
    for m in surfaces:
        tex, mat = _texture_and_material(m, "2d")
        assets += tex + [mat]
    for m in spec.materials:
        tex, mat = _texture_and_material(m, "cube")
        assets += tex + [mat]

    body = []
    for i, light in enumerate(spec.lights):
        extra = (
            f' cutoff="{_f(light.cutoff)}" exponent="{_f(light.exponent)}"' if light.kind == "spot" else ""
        )
        body.append(
            f'<light name="light{i}" type="{light.kind}" pos="{_v(light.pos)}" dir="{_v(light.dir)}" '
            f'diffuse="{_v(light.diffuse)}" specular="{_v(light.specular)}" '
            f'castshadow="{str(light.castshadow).lower()}"{extra}/>'
        )
    x0, x1, y0, y1 = spec.bounds
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if spec.kind == "indoor":
        g = GRID_INDOOR
        body.append(_plane("floor", "floor", (cx, cy, 0), hx, hy, (1, 0, 0, 0, 1, 0), g))
        hz = spec.room_height / 2
        body += [
            _plane("wall_north", "wall", (cx, y1, hz), hx, hz, (1, 0, 0, 0, 0, 1), g),
            _plane("wall_south", "wall", (cx, y0, hz), hx, hz, (-1, 0, 0, 0, 0, 1), g),
            _plane("wall_west", "wall", (x0, cy, hz), hy, hz, (0, 1, 0, 0, 0, 1), g),
            _plane("wall_east", "wall", (x1, cy, hz), hy, hz, (0, -1, 0, 0, 0, 1), g),
        ]
        if spec.ceiling is not None:
            pos = (cx, cy, spec.ceiling_height)
            body.append(_plane("ceiling", "ceiling", pos, hx, hy, (1, 0, 0, 0, -1, 0), g))
    else:
        half = OUTDOOR_GROUND_HALF
        body.append(_plane("floor", "floor", (cx, cy, 0), half, half, (1, 0, 0, 0, 1, 0), GRID_OUTDOOR))
    for obj in spec.objects:
        for k, part in enumerate(obj.parts):
            r = part.rotation()
            shadow = ' castshadow="false"' if obj.role == "marker" else ""
            body.append(
                f'<geom name="{obj.name}_{k}" type="{part.shape}" size="{_v(part.size)}" '
                f'pos="{_v(part.pos)}" xyaxes="{_v(r[:, 0])} {_v(r[:, 1])}" '
                f'material="{part.material}"{shadow}/>'
            )

    near, far = NEAR / ext, far_plane(spec) / ext
    lines = [
        f'<mujoco model="sanawm-world-{spec.seed}">',
        '  <compiler angle="degree"/>',
        '  <option gravity="0 0 0"/>',
        f'  <statistic center="{_f(cx)} {_f(cy)} 1" extent="{_f(ext)}"/>',
        "  <visual>",
        f'    <global offwidth="{w}" offheight="{h}"/>',
        f'    <quality shadowsize="{SHADOW_SIZE}" offsamples="{OFFSAMPLES}"/>',
        f'    <headlight ambient="{_v([spec.ambient] * 3)}" diffuse="0 0 0" specular="0 0 0" active="1"/>',
        f'    <map znear="{near:.8g}" zfar="{far:.8g}" shadowclip="1.2" shadowscale="0.8" haze="0.4"/>',
        f'    <rgba haze="{_v(horizon)} 1"/>',
        "  </visual>",
        '  <default><geom contype="0" conaffinity="0"/></default>',
        "  <asset>",
        *(f"    {a}" for a in assets),
        "  </asset>",
        "  <worldbody>",
        *(f"    {b}" for b in body),
        "  </worldbody>",
        "</mujoco>",
        "",
    ]
    return "\n".join(lines)
