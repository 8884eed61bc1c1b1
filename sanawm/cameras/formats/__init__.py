"""Trajectory files: read and write by file name.

| extension / name      | format                                                   |
| --------------------- | -------------------------------------------------------- |
| `.json`               | ours (`sanawm.trajectory` v1, see `native.py`)           |
| `.npz`                | ours, as numpy arrays                                    |

Other formats (RealEstate10K, COLMAP, KITTI, TUM) register their readers and writers in `FORMATS`.
"""

from __future__ import annotations

from pathlib import Path

from ..trajectory import Trajectory
from . import native

# name -> (reader(path) -> Trajectory, writer(trajectory, path))
FORMATS: dict[str, tuple] = {
    "json": (native.read_json, native.write_json),
    "npz": (native.read_npz, native.write_npz),
}
_BY_SUFFIX = {".json": "json", ".npz": "npz"}


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown trajectory format {fmt!r}; choose one of {sorted(FORMATS)}")
        return fmt
    try:
        return _BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the trajectory format of {path.name!r} from its extension; pass format= one of "
            f"{sorted(FORMATS)}"
        ) from None


def load_trajectory(path, format: str | None = None) -> Trajectory:
    """Read a trajectory file; the format comes from the extension unless `format` names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trajectory file {path} does not exist")
    return FORMATS[_format_of(path, format)][0](path)


def save_trajectory(trajectory: Trajectory, path, format: str | None = None) -> Path:
    """Write a trajectory file (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FORMATS[_format_of(path, format)][1](trajectory, path)
    return path


__all__ = ["FORMATS", "load_trajectory", "save_trajectory"]
