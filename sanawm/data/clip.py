"""Clip folders: the one on-disk unit of video + cameras that every part of sanawm reads and writes.

    <clip>/
      video.mp4     RGB frames, H.264 (see `video.py`)
      cameras.npz   c2w (F, 4, 4) float64 OpenCV camera-to-world, metres, absolute;
                    intrinsics (F, 4) float64 (fx, fy, cx, cy) in pixels of the video's (H, W);
                    timestamps (F,) float64 seconds, when known
      depth.npz     optional: depth (F, H, W) float16/float32 metres along the camera z axis (inf = none)
      meta.json     {"format": "sanawm.clip", "version": 1, "fps", "size": [H, W], "num_frames",
                     "caption", "source", "licence", "scene_seed", "extra": {...}}

`write_clip` builds the folder under a hidden temporary name next to it and renames it into place, so a
folder with the clip's name is always complete. `read_clip` validates everything it can without decoding
(meta fields, camera shapes, the video header's frame count and size, the depth array's header).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cameras import Trajectory
from .video import FrameIndices, read_video, video_info, write_video

FORMAT, VERSION = "sanawm.clip", 1
VIDEO, CAMERAS, DEPTH, META = "video.mp4", "cameras.npz", "depth.npz", "meta.json"


@dataclass(frozen=True)
class ClipMeta:
    """The contents of meta.json (format and version are implied)."""

    fps: float
    size: tuple[int, int]
    num_frames: int
    caption: str = ""
    source: str = ""
    licence: str = ""
    scene_seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fps": self.fps,
            "size": list(self.size),
            "num_frames": self.num_frames,
            "caption": self.caption,
            "source": self.source,
            "licence": self.licence,
            "scene_seed": self.scene_seed,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, doc: Any, where: str = "meta.json") -> ClipMeta:
        """Validate a parsed meta.json; `where` names the file in error messages."""
        fix = f"; rewrite the clip with sanawm.data.write_clip or fix {where} by hand"
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{where} is not a {FORMAT} file (its 'format' field must be {FORMAT!r}){fix}")
        if doc.get("version") != VERSION:
            raise ValueError(
                f"{where} has {FORMAT} version {doc.get('version')!r}; this sanawm reads version {VERSION} "
                "(upgrade sanawm to read newer clips)"
            )
        missing = [k for k in ("fps", "size", "num_frames") if k not in doc]
        if missing:
            raise ValueError(f"{where} lacks {missing}{fix}")
        fps, size, n = doc["fps"], doc["size"], doc["num_frames"]
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{where}: 'fps' must be a positive number, got {fps!r}{fix}")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(x) and x > 0 for x in size)):
            raise ValueError(f"{where}: 'size' must be [H, W] in pixels, got {size!r}{fix}")
        if not (_is_int(n) and n > 0):
            raise ValueError(f"{where}: 'num_frames' must be a positive integer, got {n!r}{fix}")
        for key in ("caption", "source", "licence"):
            if not isinstance(doc.get(key, ""), str):
                raise ValueError(f"{where}: {key!r} must be a string, got {doc[key]!r}{fix}")
        seed = doc.get("scene_seed")
        if seed is not None and not _is_int(seed):
            raise ValueError(f"{where}: 'scene_seed' must be an integer or null, got {seed!r}{fix}")
        extra = doc.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError(f"{where}: 'extra' must be an object, got {extra!r}{fix}")
        return cls(
            fps=float(fps),
            size=(size[0], size[1]),
            num_frames=n,
            caption=doc.get("caption", ""),
            source=doc.get("source", ""),
            licence=doc.get("licence", ""),
            scene_seed=seed,
            extra=extra,
        )


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Clip:
    """A clip folder that passed `read_clip`'s checks. Frames and depth load on demand."""

    folder: Path
    meta: ClipMeta
    trajectory: Trajectory

    def __len__(self) -> int:
        return self.meta.num_frames

    @property
    def has_depth(self) -> bool:
        return (self.folder / DEPTH).is_file()

    def frames(self, indices: FrameIndices = None) -> np.ndarray:
        """(len(indices), H, W, 3) uint8 RGB; indices: None (all), a slice or a list of frame indices."""
        return read_video(self.folder / VIDEO, indices)

    def depth(self, indices: FrameIndices = None) -> np.ndarray:
        """(len(indices), H, W) float16/float32 metres, as stored."""
        path = self.folder / DEPTH
        if not path.is_file():
            raise FileNotFoundError(
                f"clip {self.folder} has no depth ({DEPTH}); check clip.has_depth first, or write the clip "
                "with write_clip(..., depth=...)"
            )
        with np.load(path, allow_pickle=False) as data:
            depth = data["depth"]
        return depth if indices is None else depth[indices]


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, dtype)} of the arrays in an .npz, read from the zip entries' .npy headers only."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version} in {info.filename}")
            out[info.filename[: -len(".npy")]] = (shape, dtype)
    return out


def _validate_frames(frames, where: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{where}: frames have shape {frames.shape}; pass (F, H, W, 3) RGB with F ≥ 1")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"{where}: frames have dtype {frames.dtype}; pass uint8 RGB (from floats in [0, 1]: "
            "(x * 255).round().clip(0, 255).astype(np.uint8))"
        )
    return frames


def _validate_depth(depth, shape: tuple[int, int, int], where: str) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.shape != shape:
        raise ValueError(f"{where}: depth has shape {depth.shape}, expected (F, H, W) = {shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{where}: depth has dtype {depth.dtype}; pass float16/float32 metres")
    if depth.dtype not in (np.float16, np.float32):
        depth = depth.astype(np.float32)
    if np.isnan(depth).any() or (depth < 0).any():
        raise ValueError(
            f"{where}: depth has NaN or negative values; use metres ≥ 0 (inf where there is no surface)"
        )
    return depth


def write_clip(
    folder,
    frames: np.ndarray,
    trajectory: Trajectory,
    *,
    caption: str = "",
    source: str = "",
    licence: str = "",
    scene_seed: int | None = None,
    depth: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    lossless: bool = False,
) -> Path:
    """Write a clip folder atomically.

    Args:
        folder: the clip folder to create (parents are created).
        frames: (F, H, W, 3) uint8 RGB, H and W even.
        trajectory: F poses with intrinsics for image_size == (H, W) and fps set; timestamps are kept.
        caption, source, licence: free text stored in meta.json.
        scene_seed: the seed of a procedural scene, or None for real footage.
        depth: optional (F, H, W) float16/float32 metres (float64 is stored as float32).
        extra: JSON-serialisable dict stored as meta.json "extra".
        overwrite: replace an existing non-empty folder (otherwise refused).
        lossless: store the video bit-exactly (libx264rgb, qp 0) instead of H.264 yuv420p at crf 18.

    Returns:
        The clip folder.
    """
    folder = Path(folder)
    where = f"write_clip({str(folder)!r})"
    frames = _validate_frames(frames, where)
    f, h, w, _ = frames.shape
    if not isinstance(trajectory, Trajectory):
        raise TypeError(
            f"{where}: trajectory must be a sanawm.cameras.Trajectory, got {type(trajectory).__name__}"
        )
    if len(trajectory) != f:
        raise ValueError(
            f"{where}: {f} frames but the trajectory has {len(trajectory)} poses; pass one pose a frame"
        )
    if trajectory.intrinsics is None:
        raise ValueError(
            f"{where}: the trajectory has no intrinsics; use trajectory.with_intrinsics(K, (H, W))"
        )
    if trajectory.image_size != (h, w):
        raise ValueError(
            f"{where}: the trajectory's intrinsics are for image_size {trajectory.image_size} but the "
            f"frames are {(h, w)}; rescale the intrinsics to the frames and set image_size=({h}, {w})"
        )
    if trajectory.fps is None:
        raise ValueError(
            f"{where}: the trajectory has no fps; set it, e.g. dataclasses.replace(traj, fps=16)"
        )
    if h % 2 or w % 2:
        raise ValueError(
            f"{where}: frames are {h}x{w} (H x W); H.264 needs an even height and width: crop to "
            f"{h - h % 2}x{w - w % 2} with frames[:, :{h - h % 2}, :{w - w % 2}] and "
            f"trajectory.with_intrinsics(trajectory.intrinsics, ({h - h % 2}, {w - w % 2})) (dropping the "
            "last row/column leaves fx, fy, cx, cy unchanged)"
        )
    if scene_seed is not None:
        if not isinstance(scene_seed, int | np.integer) or isinstance(scene_seed, bool):
            raise ValueError(f"{where}: scene_seed must be an integer or None, got {scene_seed!r}")
        scene_seed = int(scene_seed)
    for name, value in (("caption", caption), ("source", source), ("licence", licence)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a string, got {type(value).__name__}")
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise ValueError(f"{where}: extra must be a dict, got {type(extra).__name__}")
    meta = ClipMeta(float(trajectory.fps), (h, w), f, caption, source, licence, scene_seed, extra)
    try:
        meta_text = json.dumps(meta.to_json(), indent=1, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: extra must be JSON-serialisable (str, int, float, bool, None, list, dict): {err}"
        ) from None
    if depth is not None:
        depth = _validate_depth(depth, (f, h, w), where)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{where}: {folder} exists and is not a folder; remove it or choose another path")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        state = "a complete clip" if is_complete_clip(folder) else "not empty (an incomplete clip?)"
        raise FileExistsError(f"{where}: {folder} is {state}; pass overwrite=True to replace it")

    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = folder.parent / f".{folder.name}.tmp-{tag}"
    old = folder.parent / f".{folder.name}.old-{tag}"
    try:
        tmp.mkdir()
        write_video(tmp / VIDEO, frames, trajectory.fps, lossless=lossless)
        cams = {"c2w": trajectory.c2w, "intrinsics": trajectory.intrinsics}
        if trajectory.timestamps is not None:
            cams["timestamps"] = trajectory.timestamps
        with open(tmp / CAMERAS, "wb") as fh:
            np.savez(fh, **cams)
        if depth is not None:
            with open(tmp / DEPTH, "wb") as fh:
                np.savez_compressed(fh, depth=depth)
        (tmp / META).write_text(meta_text, encoding="utf-8")
        replaced = folder.exists()
        if replaced:
            os.replace(folder, old)  # a directory cannot be renamed onto a non-empty one
        try:
            os.replace(tmp, folder)
        except BaseException:
            if replaced:
                os.replace(old, folder)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def read_clip(folder) -> Clip:
    """Open a clip folder, checking meta.json, cameras.npz, the video header and depth.npz's header.

    Raises:
        FileNotFoundError: the folder or one of its required files is missing.
        ValueError: a file is malformed or the files disagree (frame counts, sizes, shapes).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"clip folder {folder} does not exist")
    rewrite = "rewrite the clip with sanawm.data.write_clip"

    meta_path = folder / META
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"clip {folder} has no {META}; it is not a sanawm clip or its writing was interrupted: {rewrite}"
        )
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"clip {folder}: {META} is not valid JSON ({err}); fix it or {rewrite}") from None
    meta = ClipMeta.from_json(doc, where=f"clip {folder}: {META}")
    n, (h, w) = meta.num_frames, meta.size

    cam_path = folder / CAMERAS
    if not cam_path.is_file():
        raise FileNotFoundError(f"clip {folder} has no {CAMERAS}; {rewrite}")
    try:
        with np.load(cam_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"clip {folder}: {CAMERAS} is not a readable .npz ({err}); {rewrite}") from None
    expected = {"c2w": (n, 4, 4), "intrinsics": (n, 4), "timestamps": (n,)}
    for key, shape in expected.items():
        if key not in arrays:
            if key == "timestamps":
                continue
            raise ValueError(
                f"clip {folder}: {CAMERAS} has no {key!r} array (found {sorted(arrays)}); {rewrite}"
            )
        if arrays[key].shape != shape:
            raise ValueError(
                f"clip {folder}: {CAMERAS} {key!r} has shape {arrays[key].shape} but meta.json says "
                f"num_frames = {n}, so it should be {shape}; {rewrite}"
            )
    try:
        trajectory = Trajectory(
            c2w=arrays["c2w"],
            intrinsics=arrays["intrinsics"],
            image_size=(h, w),
            fps=meta.fps,
            timestamps=arrays.get("timestamps"),
        )
    except ValueError as err:
        raise ValueError(f"clip {folder}: {CAMERAS} holds invalid cameras: {err}") from None

    video_path = folder / VIDEO
    if not video_path.is_file():
        raise FileNotFoundError(f"clip {folder} has no {VIDEO}; {rewrite}")
    vn, vfps, vsize = video_info(video_path)
    if vn != n or vsize != (h, w):
        raise ValueError(
            f"clip {folder}: {VIDEO} has {vn} frames of {vsize[0]}x{vsize[1]} but {META} says {n} frames of "
            f"{h}x{w}; {rewrite}"
        )
    if not math.isclose(vfps, meta.fps, rel_tol=1e-3):
        raise ValueError(
            f"clip {folder}: {VIDEO} plays at {vfps:g} fps but {META} says {meta.fps:g}; {rewrite}"
        )

    depth_path = folder / DEPTH
    if depth_path.exists():
        try:
            headers = _npz_headers(depth_path)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"clip {folder}: {DEPTH} is not a readable .npz ({err}); {rewrite}") from None
        if "depth" not in headers:
            raise ValueError(
                f"clip {folder}: {DEPTH} has no 'depth' array (found {sorted(headers)}); {rewrite}"
            )
        shape, dtype = headers["depth"]
        if shape != (n, h, w) or dtype not in (np.float16, np.float32):
            raise ValueError(
                f"clip {folder}: {DEPTH} holds {dtype} {shape}, expected float16/float32 "
                f"{(n, h, w)}; {rewrite}"
            )
    return Clip(folder=folder, meta=meta, trajectory=trajectory)


def is_complete_clip(folder) -> bool:
    """True when `folder` holds a clip that `read_clip` accepts (use it to skip finished renders)."""
    try:
        read_clip(folder)
    except (FileNotFoundError, ValueError):
        return False
    return True


__all__ = ["Clip", "ClipMeta", "is_complete_clip", "read_clip", "write_clip"]
