"""COLMAP text models (`colmap`): a folder with cameras.txt and images.txt (points3D.txt is ignored).

    cameras.txt:  CAMERA_ID MODEL WIDTH HEIGHT PARAMS...        e.g. `1 PINHOLE 1280 704 fx fy cx cy`
    images.txt:   IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME   then one line of 2D points (may be empty)

An image line holds the WORLD-TO-CAMERA pose: a unit quaternion in SCALAR-FIRST order (qw, qx, qy, qz)
and the translation t, so x_cam = R x_world + t (OpenCV axes). Reading inverts it to camera-to-world.

- Frames are ordered by image name (digit runs compare as numbers, so `frame2` < `frame10`); the names
  are kept in `ColmapModel.names`. Image and camera ids are not kept (writing numbers them 1..F).
- Camera models: PINHOLE and SIMPLE_PINHOLE are read as they are. SIMPLE_RADIAL, RADIAL, OPENCV and
  FULL_OPENCV are accepted only when every distortion coefficient is exactly 0 (they are then
  pinholes); otherwise reading refuses: undistort first (`colmap image_undistorter` writes PINHOLE).
  Fisheye and other models are refused. All cameras must share one WIDTH x HEIGHT (the image_size).
- The principal point is read as written. COLMAP puts the centre of the top-left pixel at (0.5, 0.5),
  while sanawm's ray code puts it at (0, 0); like the reference pipeline, no half-pixel shift is applied.
- COLMAP stores no timestamps or fps; writing drops them.

Writing produces cameras.txt (one PINHOLE camera per distinct set of intrinsics), images.txt (empty
2D-point lines) and an empty points3D.txt, so the folder opens in COLMAP. Numbers are exact float64
text unless `float_format` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..trajectory import Trajectory

CAMERAS, IMAGES, POINTS = "cameras.txt", "images.txt", "points3D.txt"

# model -> (number of params, indices of fx, fy, cx, cy in them, indices of distortion coefficients)
_PINHOLE_LIKE = {
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2), ()),
    "PINHOLE": (4, (0, 1, 2, 3), ()),
    "SIMPLE_RADIAL": (4, (0, 0, 1, 2), (3,)),
    "RADIAL": (5, (0, 0, 1, 2), (3, 4)),
    "OPENCV": (8, (0, 1, 2, 3), tuple(range(4, 8))),
    "FULL_OPENCV": (12, (0, 1, 2, 3), tuple(range(4, 12))),
}
_QUAT_TOL = 1e-3


@dataclass(frozen=True)
class ColmapModel:
    """A COLMAP model as a trajectory: frames sorted by image name, and those names."""

    trajectory: Trajectory
    names: tuple[str, ...]


def read_colmap(path) -> ColmapModel:
    """Read a COLMAP text model folder (or the path of its images.txt).

    Returns:
        ColmapModel: trajectory with c2w (F, 4, 4), intrinsics (F, 4) in pixels, image_size (H, W);
        names (F,) the image names in frame order.
    """
    folder = Path(path)
    if folder.name == IMAGES and folder.is_file():
        folder = folder.parent
    for name in (CAMERAS, IMAGES):
        if not (folder / name).is_file():
            raise ValueError(
                f"{folder} has no {name}; a COLMAP text model folder holds {CAMERAS} and {IMAGES}"
            )
    cameras, size = _read_cameras(folder / CAMERAS)
    images = _read_images(folder / IMAGES, cameras)
    images.sort(key=lambda im: _natural_key(im[0]))
    names = [im[0] for im in images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{folder / IMAGES}: image name {dup!r} appears twice; names must be unique")
    quat_wxyz = np.array([im[1] for im in images])
    t = np.array([im[2] for im in images])
    r_c2w = Rotation.from_quat(quat_wxyz[:, [1, 2, 3, 0]]).inv().as_matrix()  # Rᵀ
    c2w = np.zeros((len(images), 4, 4))
    c2w[:, :3, :3] = r_c2w
    c2w[:, :3, 3] = -np.einsum("fij,fj->fi", r_c2w, t)
    c2w[:, 3, 3] = 1.0
    intrinsics = np.array([cameras[im[3]] for im in images])
    try:
        traj = Trajectory(c2w=c2w, intrinsics=intrinsics, image_size=size)
    except ValueError as err:
        raise ValueError(f"{folder}: {err} (frames in image-name order)") from None
    return ColmapModel(trajectory=traj, names=tuple(names))


def write_colmap(
    traj: Trajectory, path, names: list[str] | None = None, float_format: str | None = None
) -> None:
    """Write a COLMAP text model folder: cameras.txt, images.txt and an empty points3D.txt.

    Args:
        traj: needs intrinsics and image_size (COLMAP cameras store width and height).
        names: one image name per frame; default `frame_000000.png`, ... (sorting like the frames).
        float_format: printf format for the numbers; None writes exact float64 text.
    """
    folder = Path(path)
    if traj.intrinsics is None or traj.image_size is None:
        missing = "intrinsics" if traj.intrinsics is None else "image_size"
        raise ValueError(
            f"cannot write {folder} as COLMAP: its cameras need intrinsics and an image size, and this "
            f"trajectory has no {missing}; set them with traj.with_intrinsics(intrinsics, image_size=(H, W))"
        )
    names = [f"frame_{i:06d}.png" for i in range(len(traj))] if names is None else list(names)
    if len(names) != len(traj):
        raise ValueError(f"got {len(names)} image names for {len(traj)} frames; give one name per frame")
    if sorted(names, key=_natural_key) != names or len(set(names)) != len(names):
        raise ValueError(
            "image names must be unique and already in frame order (COLMAP frames are read back sorted by "
            "name); e.g. zero-pad the frame numbers"
        )
    if any(not n or n != n.strip() or "\n" in n for n in names):
        raise ValueError("image names must be non-empty, one line, without leading or trailing spaces")

    def num(x: float) -> str:
        return repr(float(x)) if float_format is None else float_format % x

    h, w = traj.image_size
    distinct, camera_of = np.unique(traj.intrinsics, axis=0, return_inverse=True)
    camera_lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(distinct)}",
    ]
    camera_lines += [
        f"{i + 1} PINHOLE {w} {h} " + " ".join(num(v) for v in k) for i, k in enumerate(distinct)
    ]
    rot = Rotation.from_matrix(np.swapaxes(traj.c2w[:, :3, :3], 1, 2))  # world-to-camera
    quat = rot.as_quat(canonical=True)[:, [3, 0, 1, 2]]  # qw qx qy qz, qw >= 0
    # t from the stored (exactly orthonormal) rotation, so the camera centre reads back unchanged
    t_w2c = -np.einsum("fij,fj->fi", rot.as_matrix(), traj.c2w[:, :3, 3])
    image_lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(traj)}, mean observations per image: 0",
    ]
    for i in range(len(traj)):
        pose = " ".join(num(v) for v in (*quat[i], *t_w2c[i]))
        image_lines += [f"{i + 1} {pose} {int(camera_of.reshape(-1)[i]) + 1} {names[i]}", ""]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CAMERAS).write_text("\n".join(camera_lines) + "\n")
    (folder / IMAGES).write_text("\n".join(image_lines) + "\n")
    (folder / POINTS).write_text(
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        "# Number of points: 0, mean track length: 0\n"
    )


def _read_cameras(path: Path) -> tuple[dict[int, list[float]], tuple[int, int]]:
    """cameras.txt -> ({camera_id: [fx, fy, cx, cy]}, (H, W))."""
    cameras, sizes = {}, set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) < 4:
            raise ValueError(f"{path}, line {number}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
        model = tokens[1]
        if model not in _PINHOLE_LIKE:
            raise ValueError(
                f"{path}, line {number}: camera model {model} is not a pinhole; sanawm reads "
                f"{', '.join(_PINHOLE_LIKE)}; undistort the images first (colmap image_undistorter writes "
                "PINHOLE cameras)"
            )
        count, k_index, dist_index = _PINHOLE_LIKE[model]
        try:
            cam_id, width, height = int(tokens[0]), int(tokens[2]), int(tokens[3])
            params = [float(t) for t in tokens[4:]]
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}; expected integer id, width, height") from None
        if len(params) != count:
            raise ValueError(f"{path}, line {number}: {model} takes {count} parameters, got {len(params)}")
        if any(params[i] != 0.0 for i in dist_index):
            raise ValueError(
                f"{path}, line {number}: {model} camera {cam_id} has non-zero distortion "
                f"{[params[i] for i in dist_index]}; sanawm models pinhole cameras only; undistort the "
                "images first (colmap image_undistorter writes PINHOLE cameras)"
            )
        cameras[cam_id] = [params[i] for i in k_index]
        sizes.add((height, width))
    if not cameras:
        raise ValueError(f"{path} has no cameras")
    if len(sizes) > 1:
        raise ValueError(
            f"{path}: cameras have different image sizes {sorted(sizes)} (H, W); a trajectory has one "
            "image size; resize the images and intrinsics to one size first"
        )
    return cameras, sizes.pop()


def _read_images(path: Path, cameras: dict) -> list[tuple[str, list[float], list[float], int]]:
    """images.txt -> [(name, [qw, qx, qy, qz], [tx, ty, tz], camera_id)] in file order."""
    images = []
    lines = path.read_text().splitlines()
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        if not line or line.startswith("#"):
            continue
        tokens = line.split(maxsplit=9)
        if len(tokens) != 10:
            raise ValueError(
                f"{path}, line {number}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got "
                f"{len(tokens)} fields; every image line is followed by its 2D-points line (may be empty)"
            )
        try:
            values = [float(t) for t in tokens[1:8]]
            cam_id = int(tokens[8])
        except ValueError as err:
            raise ValueError(
                f"{path}, line {number}: {err}; expected numbers and an integer CAMERA_ID"
            ) from None
        if cam_id not in cameras:
            raise ValueError(f"{path}, line {number}: camera {cam_id} is not in {CAMERAS}")
        norm = float(np.linalg.norm(values[:4]))
        if not abs(norm - 1.0) <= _QUAT_TOL:
            raise ValueError(
                f"{path}, line {number}: the quaternion (QW QX QY QZ) = {values[:4]} has norm {norm:.6g}, "
                "not 1; COLMAP stores a unit quaternion, scalar first"
            )
        images.append((tokens[9].strip(), values[:4], values[4:], cam_id))
        number += 1  # the 2D-points line
    if not images:
        raise ValueError(f"{path} has no images")
    return images


def _natural_key(name: str) -> list:
    return [(0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]
