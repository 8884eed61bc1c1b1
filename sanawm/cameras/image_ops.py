"""Pinhole intrinsics under image resizing and cropping, matching diffusers' SANA-WM pipeline.

`resize_and_center_crop_intrinsics` / `resize_and_center_crop_image` reproduce diffusers'
`resize_and_center_crop` + `transform_intrinsics_for_crop` (pipelines/sana_wm/cam_utils.py): scale
so that the image covers the target, round the resized size, centre-crop. Conventions:

- Sizes are (H, W). Intrinsics K4 are (..., 4) rows of (fx, fy, cx, cy) in pixels.
- Crop offsets are (x, y) = (left, top) in pixels, as the names `offset_xy` / `crop_offset` say.
- A resize by s maps image coordinate u to s·u (cx -> s·cx), as in the reference. This is exact for
  coordinates measured from the image's top-left corner; with pixel centres at integers (sanawm's ray
  convention) the exact map is s·(u + 0.5) − 0.5, so points drift by 0.5·(s − 1) px. Kept for parity.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _k4(intrinsics) -> np.ndarray:
    k = np.array(intrinsics, dtype=np.float64)
    if k.ndim == 0 or k.shape[-1] != 4:
        raise ValueError(
            f"intrinsics have shape {k.shape}; pass (4,) or (..., 4) rows of (fx, fy, cx, cy) in pixels "
            "(convert a 3x3 K with as_intrinsics_vec4)"
        )
    return k


def _size(size, name: str) -> tuple[int, int]:
    h, w = (int(x) for x in size)
    if h <= 0 or w <= 0 or (h, w) != tuple(size):
        raise ValueError(f"{name} must be positive integers (H, W), got {tuple(size)}")
    return h, w


def resize_intrinsics(intrinsics, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of an image resized from src_size to dst_size, both (H, W).

    Returns (..., 4) float64: fx, cx scaled by W_dst / W_src; fy, cy by H_dst / H_src.
    """
    k = _k4(intrinsics)
    (sh, sw), (dh, dw) = _size(src_size, "src_size"), _size(dst_size, "dst_size")
    sx, sy = dw / sw, dh / sh
    out = k.copy()
    out[..., 0] *= sx
    out[..., 2] = out[..., 2] * sx
    out[..., 1] *= sy
    out[..., 3] = out[..., 3] * sy
    return out


def crop_intrinsics(intrinsics, offset_xy: tuple[float, float]) -> np.ndarray:
    """Intrinsics of a crop whose top-left corner is at offset_xy = (left, top) px: cx − left, cy − top."""
    out = _k4(intrinsics).copy()
    left, top = offset_xy
    out[..., 2] -= left
    out[..., 3] -= top
    return out


def resize_and_center_crop_size(
    src_size: tuple[int, int], target_size: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The reference's geometry: ((resized H, W), (left, top)) to cover target_size then centre-crop.

    scale = max(H_t / H, W_t / W); resized = max(target, round(src · scale)) per side (Python's round,
    halves to even, as the reference); offset = floor((resized − target) / 2).
    """
    (sh, sw), (th, tw) = _size(src_size, "src_size"), _size(target_size, "target_size")
    scale = max(th / sh, tw / sw)
    rh, rw = max(th, int(round(sh * scale))), max(tw, int(round(sw * scale)))
    return (rh, rw), ((rw - tw) // 2, (rh - th) // 2)


def resize_and_center_crop_intrinsics(
    intrinsics, src_size: tuple[int, int], target_size: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Intrinsics after an aspect-preserving resize that covers target_size and a centre crop to it.

    Args:
        intrinsics: (4,) or (..., 4) (fx, fy, cx, cy) in pixels of the src_size image.
        src_size, target_size: (H, W).

    Returns:
        (K4 of the target image, resized_size (H, W), crop_offset (left, top)).
    """
    resized, offset = resize_and_center_crop_size(src_size, target_size)
    return crop_intrinsics(resize_intrinsics(intrinsics, src_size, resized), offset), resized, offset


def resize_and_center_crop_image(
    image: Image.Image, target_size: tuple[int, int], intrinsics=None
) -> tuple[Image.Image, np.ndarray | None]:
    """Resize (Lanczos) and centre-crop a PIL image to target_size (H, W), as the reference pipeline.

    Args:
        image: PIL image of any size.
        intrinsics: optional (4,) or (..., 4) pixel intrinsics of `image`.

    Returns:
        (the target_size image, its intrinsics or None).
    """
    src_size = (image.height, image.width)
    (rh, rw), (left, top) = resize_and_center_crop_size(src_size, target_size)
    th, tw = _size(target_size, "target_size")
    out = image.resize((rw, rh), Image.LANCZOS).crop((left, top, left + tw, top + th))
    k = None
    if intrinsics is not None:
        k = crop_intrinsics(resize_intrinsics(intrinsics, src_size, (rh, rw)), (left, top))
    return out, k
