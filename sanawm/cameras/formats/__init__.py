"""Trajectory files: read and write by file name, or by `format=`.

| format   | what                                              | picked without `format=` when            |
| -------- | ------------------------------------------------- | ---------------------------------------- |
| `json`   | ours (`sanawm.trajectory` v1, see `native.py`)    | the name ends in `.json`                 |
| `npz`    | ours, as numpy arrays                             | the name ends in `.npz`                  |
| `re10k`  | RealEstate10K camera `.txt` (`re10k.py`)          | never: `.txt` is ambiguous               |
| `kitti`  | KITTI odometry poses.txt (+ calib.txt, times.txt) | a folder holding poses.txt               |
| `tum`    | TUM RGB-D trajectory (`tum.py`)                   | the name ends in `.tum`                  |
| `colmap` | COLMAP text model folder (`colmap.py`)            | a folder with cameras.txt + images.txt   |

Through this registry every format reads and writes a plain `Trajectory` (each module says what its
format stores and drops). Format-specific extras live in the modules' own functions: RealEstate10K's
URL and pixel intrinsics (`read_re10k`), COLMAP's image names (`read_colmap` / `write_colmap`), KITTI's
image size and separate calib/times paths (`read_kitti`), and the published text precision
(`float_format=` on the text writers).
"""

from __future__ import annotations

from pathlib import Path

from ..trajectory import Trajectory
from . import colmap, kitti, native, re10k, tum


def _read_re10k(path: Path) -> Trajectory:
    return re10k.read_re10k(path).trajectory


def _read_colmap(path: Path) -> Trajectory:
    return colmap.read_colmap(path).trajectory


# name -> (reader(path) -> Trajectory, writer(trajectory, path))
FORMATS: dict[str, tuple] = {
    "json": (native.read_json, native.write_json),
    "npz": (native.read_npz, native.write_npz),
    "re10k": (_read_re10k, re10k.write_re10k),
    "kitti": (kitti.read_kitti, kitti.write_kitti),
    "tum": (tum.read_tum, tum.write_tum),
    "colmap": (_read_colmap, colmap.write_colmap),
}
_BY_SUFFIX = {".json": "json", ".npz": "npz", ".tum": "tum"}
_TEXT_FORMATS = ("re10k", "kitti", "tum")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown trajectory format {fmt!r}; choose one of {sorted(FORMATS)}")
        return fmt
    if path.is_dir():
        if (path / colmap.CAMERAS).is_file() and (path / colmap.IMAGES).is_file():
            return "colmap"
        if (path / kitti.POSES).is_file():
            return "kitti"
        raise ValueError(
            f"cannot tell the trajectory format of folder {path}: it has neither {colmap.CAMERAS} + "
            f"{colmap.IMAGES} (colmap) nor {kitti.POSES} (kitti); pass format= one of {sorted(FORMATS)}"
        )
    suffix = path.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix == ".txt":
        raise ValueError(
            f"{path.name!r} is a .txt file, which may be any of {', '.join(_TEXT_FORMATS)}; pass format= "
            "to say which"
        )
    raise ValueError(
        f"cannot tell the trajectory format of {path.name!r} from its name; pass format= one of "
        f"{sorted(FORMATS)}"
    )


def load_trajectory(path, format: str | None = None) -> Trajectory:
    """Read a trajectory file or folder; the format comes from the name unless `format` names it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trajectory file {path} does not exist")
    return FORMATS[_format_of(path, format)][0](path)


def save_trajectory(trajectory: Trajectory, path, format: str | None = None) -> Path:
    """Write a trajectory file (parent folders are created); returns the path.

    Folder formats (colmap, and kitti to a path without suffix) write their files inside `path`.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    FORMATS[fmt][1](trajectory, path)
    return path


__all__ = ["FORMATS", "load_trajectory", "save_trajectory"]
