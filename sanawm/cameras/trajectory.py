"""`Trajectory`: the one in-memory camera path type every part of sanawm passes around.

Conventions (written down once, used everywhere):
- Camera axes are OpenCV's: x right, y down, z forward (the camera looks along +z).
- `c2w[i]` is the 4x4 camera-to-world transform of frame i, in metres when the scale is known;
  world points map to camera points by inv(c2w). Poses are absolute (not relative, not normalised).
- Intrinsics are pixel (fx, fy, cx, cy) of an image of `image_size` = (H, W). Pixel (u, v) is
  (column, row) and integer coordinates address pixel centres, as in the release's ray code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .intrinsics import as_intrinsics_vec4
from .poses import as_c2w, relative_to_first


@dataclass(frozen=True)
class Trajectory:
    """A camera path: poses, optional intrinsics, image size, frame rate and timestamps.

    c2w: (F, 4, 4) float64. intrinsics: (F, 4) float64 pixels or None. image_size: (H, W) or None.
    fps: frames per second or None. timestamps: (F,) seconds or None (then i / fps when fps is set).
    """

    c2w: np.ndarray
    intrinsics: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        c2w = as_c2w(self.c2w)
        object.__setattr__(self, "c2w", c2w)
        if self.intrinsics is not None:
            object.__setattr__(self, "intrinsics", as_intrinsics_vec4(self.intrinsics, len(c2w)))
        if self.image_size is not None:
            h, w = (int(x) for x in self.image_size)
            if h <= 0 or w <= 0:
                raise ValueError(f"image_size must be positive (H, W), got {self.image_size}")
            object.__setattr__(self, "image_size", (h, w))
        if self.fps is not None and not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        if self.timestamps is not None:
            ts = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
            if len(ts) != len(c2w):
                raise ValueError(f"timestamps has {len(ts)} entries but the trajectory has {len(c2w)} poses")
            if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
                raise ValueError("timestamps must be finite and strictly increasing")
            object.__setattr__(self, "timestamps", ts)

    def __len__(self) -> int:
        return len(self.c2w)

    @property
    def times(self) -> np.ndarray:
        """(F,) seconds: the timestamps, else i / fps, else frame indices."""
        if self.timestamps is not None:
            return self.timestamps
        return np.arange(len(self)) / (self.fps or 1.0)

    @property
    def positions(self) -> np.ndarray:
        """(F, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def relative_to_first(self) -> Trajectory:
        """The same path expressed in the first camera's frame (frame 0 becomes the identity)."""
        return replace(self, c2w=relative_to_first(self.c2w))

    def with_intrinsics(self, intrinsics, image_size: tuple[int, int]) -> Trajectory:
        return replace(self, intrinsics=as_intrinsics_vec4(intrinsics, len(self)), image_size=image_size)
