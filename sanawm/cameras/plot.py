"""Draw camera paths: a top-down view and a side view, with frame numbers and heading arrows, to a PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .trajectory import Trajectory

# (panel title, horizontal axis label, vertical axis label) and how to map a world vector onto that panel.
_PANELS = (
    ("top-down", "x, right (m)", "z, forward (m)", lambda v: (v[..., 0], v[..., 2])),
    ("side", "z, forward (m)", "height, −y (m)", lambda v: (v[..., 2], -v[..., 1])),
)


def _default_every(traj: Trajectory) -> int:
    """One marker per second when the clip is at most 20 s long, else about 10 markers."""
    span = len(traj) - 1
    if traj.fps is not None and span / traj.fps <= 20:
        return max(1, round(traj.fps))
    return max(1, math.ceil(span / 10))


def plot_trajectory(
    trajectories: Trajectory | Sequence[Trajectory],
    path,
    labels: Sequence[str] | None = None,
    tick_every: int | None = None,
) -> Path:
    """Write a PNG with a top-down (x–z, forward up the page) and a side (z vs height) view of the paths.

    Each path is a line of camera centres with a marker, its frame number and a small arrow showing
    where the camera looks every `tick_every` frames (default: every second of a clip up to 20 s, else
    about 10 marks), a filled circle at the start and a square at the end. Axes have equal scale.

    Args:
        trajectories: one `Trajectory` or a list of them (drawn in different colours).
        path: output file, ending in .png (parent folders are created).
        labels: legend entries, one per trajectory.
        tick_every: frames between markers.

    Returns:
        The path written.
    """
    trajs = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    if not trajs or not all(isinstance(t, Trajectory) for t in trajs):
        raise ValueError("plot_trajectory needs a Trajectory or a non-empty list of Trajectory objects")
    if labels is not None and len(labels) != len(trajs):
        raise ValueError(
            f"got {len(labels)} labels for {len(trajs)} trajectories; give one label per trajectory"
        )
    if tick_every is not None and (
        isinstance(tick_every, bool) or int(tick_every) != tick_every or tick_every < 1
    ):
        raise ValueError(f"tick_every must be a whole number of frames >= 1, got {tick_every!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the plot is a PNG; give an output path ending in .png, not {path.name!r}")

    # Agg draws to a file without a display; using it through its canvas leaves pyplot's backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 6.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.09, top=0.9, wspace=0.18)
    every_pos = np.concatenate([t.positions for t in trajs])
    extent = float(np.ptp(every_pos, axis=0).max())
    arrow = 0.06 * extent if extent > 0 else 0.25  # heading arrow length, metres

    for ax, (title, xlabel, ylabel, project) in zip(axes, _PANELS, strict=True):
        lows, highs = [], []
        for i, traj in enumerate(trajs):
            color = f"C{i % 10}"
            every = tick_every or _default_every(traj)
            marks = np.arange(0, len(traj), every)
            x, y = project(traj.positions)
            dx, dy = project(traj.c2w[:, :3, 2] * arrow)  # camera forward (+z) axis
            label = labels[i] if labels is not None else None
            ax.plot(x, y, color=color, lw=1.5, label=label)
            ax.plot(x[0], y[0], "o", color=color, ms=7)
            ax.plot(x[-1], y[-1], "s", color=color, ms=6)
            ax.plot(x[marks], y[marks], ".", color=color, ms=6)
            ax.quiver(
                x[marks], y[marks], dx[marks], dy[marks], color=color,
                angles="xy", scale_units="xy", scale=1, width=0.004,
            )  # fmt: skip
            for f in marks:
                ax.annotate(
                    str(f), (x[f], y[f]), xytext=(3, 3), textcoords="offset points", fontsize=7, color=color
                )
            lows.append(np.minimum([x.min(), y.min()], [(x + dx).min(), (y + dy).min()]))
            highs.append(np.maximum([x.max(), y.max()], [(x + dx).max(), (y + dy).max()]))
        ax.update_datalim([np.min(lows, axis=0), np.max(highs, axis=0)])  # make room for the arrows
        ax.margins(0.08)
        ax.autoscale_view()
        ax.set_aspect("equal", adjustable="datalim")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, alpha=0.3)
    if labels is not None:
        axes[0].legend(loc="best", fontsize=8)
    everies = sorted({tick_every or _default_every(t) for t in trajs})
    every_text = "/".join(map(str, everies))
    fig.suptitle(
        f"camera path: ● start, ■ end, frame numbers every {every_text} frames, arrows = viewing direction"
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


__all__ = ["plot_trajectory"]


def add_minimap(
    frames: np.ndarray, trajectory: Trajectory, fraction: float = 0.28, margin: int = 6
) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 with a top-down minimap of the camera path in the top-right corner:
    the whole path in grey, the part travelled in white, the current camera as a dot with its heading.

    The map shows the ground plane (x right, z forward up the map), equal scale on both axes.
    """
    from PIL import Image, ImageDraw

    F, H, W, _ = frames.shape
    if len(trajectory) != F:
        raise ValueError(
            f"the trajectory has {len(trajectory)} poses for {F} frames; give one pose per frame"
        )
    side = max(16, int(round(fraction * min(H, W))))
    xz = trajectory.positions[:, [0, 2]]
    lo, hi = xz.min(0), xz.max(0)
    span = max(float((hi - lo).max()), 1e-6)
    inner = side - 2 * margin
    centre = (lo + hi) / 2
    pix = np.empty_like(xz)
    pix[:, 0] = side / 2 + (xz[:, 0] - centre[0]) / span * inner
    pix[:, 1] = side / 2 - (xz[:, 1] - centre[1]) / span * inner  # z forward = up on the map
    heading = trajectory.c2w[:, [0, 2], 2]  # camera z axis on the ground plane
    heading = heading / np.maximum(np.linalg.norm(heading, axis=1, keepdims=True), 1e-9)
    path = [tuple(p) for p in pix]
    out = frames.copy()
    x0 = W - side - margin
    for i in range(F):
        inset = Image.new("RGBA", (side, side), (0, 0, 0, 140))
        draw = ImageDraw.Draw(inset)
        if len(path) > 1:
            draw.line(path, fill=(150, 150, 150, 255), width=1)
            if i > 0:
                draw.line(path[: i + 1], fill=(255, 255, 255, 255), width=2)
        cx, cy = path[i]
        hx, hy = heading[i, 0] * side * 0.12, -heading[i, 1] * side * 0.12
        draw.line([(cx, cy), (cx + hx, cy + hy)], fill=(255, 80, 80, 255), width=2)
        draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=(255, 80, 80, 255))
        region = Image.fromarray(out[i, margin : margin + side, x0 : x0 + side]).convert("RGBA")
        out[i, margin : margin + side, x0 : x0 + side] = np.asarray(Image.alpha_composite(region, inset))[
            ..., :3
        ]
    return out
