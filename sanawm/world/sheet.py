"""Contact sheets: a grid of a clip's frames with frame numbers (and depth, when the clip has it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _depth_to_rgb(depth: np.ndarray) -> np.ndarray:
    """(H, W) metres → (H, W, 3) uint8: inverse depth through matplotlib's viridis, sky black."""
    from matplotlib import colormaps

    inv = np.where(np.isfinite(depth) & (depth > 0), 1.0 / np.maximum(depth, 1e-6), 0.0)
    hi = np.percentile(inv[inv > 0], 99) if (inv > 0).any() else 1.0
    rgb = colormaps["viridis"](np.clip(inv / hi, 0, 1))[..., :3]
    rgb[inv == 0] = 0.0
    return (rgb * 255).astype(np.uint8)


def contact_sheet(
    frames: np.ndarray,
    indices,
    path,
    *,
    depth: np.ndarray | None = None,
    fps: float | None = None,
    title: str = "",
    columns: int = 4,
    cell_width: int = 256,
) -> Path:
    """Write a PNG grid of `frames` (N, H, W, 3) labelled with their frame `indices` (and times at `fps`).

    With `depth` (N, H, W) metres, each cell shows the frame and its depth (inverse depth, viridis)
    side by side. `title` (e.g. the caption) is wrapped above the grid.
    """
    frames = np.asarray(frames)
    n, h, w, _ = frames.shape
    scale = min(1.0, cell_width / w) if depth is None else min(1.0, cell_width / (2 * w))
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    cell_w = cw * (1 if depth is None else 2)
    rows = -(-n // columns)
    font = ImageFont.load_default()
    lines = textwrap.wrap(title, width=max(20, columns * cell_w // 7)) if title else []
    top = 6 + 14 * len(lines)
    pad = 4
    sheet = Image.new("RGB", (columns * (cell_w + pad) + pad, top + rows * (ch + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(lines):
        draw.text((pad, 3 + 14 * k), line, fill=(235, 235, 235), font=font)
    for i in range(n):
        x, y = pad + (i % columns) * (cell_w + pad), top + (i // columns) * (ch + pad)
        sheet.paste(Image.fromarray(frames[i]).resize((cw, ch), Image.BILINEAR), (x, y))
        if depth is not None:
            sheet.paste(Image.fromarray(_depth_to_rgb(depth[i])).resize((cw, ch), Image.NEAREST), (x + cw, y))
        label = f"frame {int(indices[i])}" + (f"  {int(indices[i]) / fps:.2f} s" if fps else "")
        box = draw.textbbox((x + 3, y + 2), label, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
        draw.text((x + 3, y + 2), label, fill=(255, 255, 255), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def sheet_indices(num_frames: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over a clip, first and last included."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))
