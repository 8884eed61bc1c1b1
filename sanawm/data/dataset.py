"""`ClipDataset`: fixed-length training windows from the clips of a manifest, with matching cameras.

Item i is the i-th eligible clip of the manifest (a clip with enough frames). Its window start, and the
crop offsets when `random_crop`, are drawn from a generator seeded by (seed, i), so an item is the same
every time it is read with the same seed; change `seed` (e.g. per epoch) for new windows.

Resizing follows the release's resize_and_center_crop: scale = max(H / h, W / w), the frame is resized
to (max(H, round(h·scale)), max(W, round(w·scale))) and cropped to (H, W) at offsets ((rh − H) // 2,
(rw − W) // 2) (or random offsets). The intrinsics follow the pixels: with sx = rw / w, sy = rh / h,

    fx' = fx·sx,  cx' = cx·sx − left,  fy' = fy·sy,  cy' = cy·sy − top,

i.e. image point (u, v) moves to (u·sx − left, v·sy − top), as in the release (the geometry is
`sanawm.cameras.image_ops`; see there for the half-pixel gap of this convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..cameras.image_ops import crop_intrinsics, resize_and_center_crop_size, resize_intrinsics
from .clip import read_clip
from .manifest import ManifestEntry, read_manifest


class ClipDataset(Dataset):
    """Windows of `num_frames` frames (every `frame_stride`-th) from the clips listed in root/manifest.jsonl.

    Args:
        root: dataset root holding manifest.jsonl (see `write_manifest`).
        num_frames: frames per item (81 for 5 s at 16 fps; the model wants 8k + 1).
        size: (H, W) output size; None keeps each clip's own size (batching then needs equal sizes).
        frame_stride: step between the window's frames in the clip.
        random_crop: crop at random offsets instead of the centre.
        seed: with the item index, seeds the window start and crop offsets.
        min_clip_frames: also skip clips shorter than this.

    Items are dicts: video (F, 3, H, W) float32 in [-1, 1]; c2w (F, 4, 4) float32 absolute, as stored;
    intrinsics (F, 4) float32 pixels of (H, W); caption str; clip str (path relative to root);
    frame_indices (F,) int64 indices into the clip.
    """

    def __init__(
        self,
        root,
        num_frames: int,
        size: tuple[int, int] | None = None,
        frame_stride: int = 1,
        random_crop: bool = False,
        seed: int = 0,
        min_clip_frames: int | None = None,
    ) -> None:
        if num_frames < 1 or frame_stride < 1:
            raise ValueError(f"num_frames ({num_frames}) and frame_stride ({frame_stride}) must be ≥ 1")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be (H, W) in pixels, got {size}")
        if seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {seed}")
        self.root = Path(root)
        self.num_frames, self.frame_stride = int(num_frames), int(frame_stride)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.random_crop, self.seed = bool(random_crop), int(seed)
        self.span = (self.num_frames - 1) * self.frame_stride + 1
        need = max(self.span, min_clip_frames or 0)
        entries = read_manifest(self.root)
        if not entries:
            raise ValueError(
                f"the manifest of {self.root} lists no clips; write clips under it, then "
                f"sanawm.data.write_manifest({str(self.root)!r})"
            )
        self.entries: list[ManifestEntry] = [e for e in entries if e.num_frames >= need]
        if not self.entries:
            longest = max(e.num_frames for e in entries)
            why = (
                f"min_clip_frames = {min_clip_frames}"
                if need > self.span
                else f"{self.num_frames} frames at stride {self.frame_stride}"
            )
            raise ValueError(
                f"no clip has ≥ {need} frames ({why}); the longest of the {len(entries)} clips in "
                f"{self.root} has {longest}; lower num_frames, frame_stride or min_clip_frames, "
                "or add longer clips"
            )

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} clips")
        index = index % len(self)
        entry = self.entries[index]
        clip = read_clip(self.root / entry.path)
        n = len(clip)
        if n < self.span:
            raise ValueError(
                f"clip {entry.path} now has {n} frames but the manifest says {entry.num_frames}; "
                f"regenerate it with sanawm.data.write_manifest({str(self.root)!r})"
            )
        rng = np.random.default_rng((self.seed, index))
        start = int(rng.integers(0, n - self.span + 1))
        indices = start + self.frame_stride * np.arange(self.num_frames)
        frames = torch.from_numpy(clip.frames(indices)).permute(0, 3, 1, 2).float()  # (F, 3, h, w), 0..255
        intrinsics = clip.trajectory.intrinsics[indices]
        src = clip.meta.size
        if self.size is not None and self.size != src:
            resized, (left, top) = resize_and_center_crop_size(src, self.size)
            (th, tw), (rh, rw) = self.size, resized
            if self.random_crop:
                top, left = int(rng.integers(0, rh - th + 1)), int(rng.integers(0, rw - tw + 1))
            if resized != src:
                frames = F.interpolate(
                    frames, size=resized, mode="bilinear", align_corners=False, antialias=True
                )
            frames = frames[:, :, top : top + th, left : left + tw]
            intrinsics = crop_intrinsics(resize_intrinsics(intrinsics, src, resized), (left, top))
        video = (frames / 127.5 - 1.0).clamp_(-1.0, 1.0).contiguous()
        return {
            "video": video,
            "c2w": torch.from_numpy(clip.trajectory.c2w[indices]).float(),
            "intrinsics": torch.from_numpy(intrinsics).float(),
            "caption": clip.meta.caption,
            "clip": entry.path,
            "frame_indices": torch.from_numpy(indices.astype(np.int64)),
        }


__all__ = ["ClipDataset"]
