"""Trajectory file formats: exact round trips, the real KITTI / RealEstate10K files, format semantics,
and errors that name the file, the line and the fix."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from sanawm.cameras import Trajectory
from sanawm.cameras.formats import FORMATS, load_trajectory, save_trajectory
from sanawm.cameras.formats.colmap import read_colmap, write_colmap
from sanawm.cameras.formats.kitti import KITTI_FLOAT_FORMAT, read_kitti, write_kitti
from sanawm.cameras.formats.re10k import RE10K_FLOAT_FORMAT, read_re10k, write_re10k
from sanawm.cameras.image_ops import resize_intrinsics

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
RE10K_DIR = DATA / "real" / "re10k_cameractrl"
KITTI_DIR = DATA / "real" / "kitti07"
RE10K_FILES = sorted(RE10K_DIR.glob("*.txt")) if RE10K_DIR.is_dir() else []
needs_re10k = pytest.mark.skipif(not RE10K_FILES, reason=f"RealEstate10K test files absent ({RE10K_DIR})")
needs_kitti = pytest.mark.skipif(
    not (KITTI_DIR / "poses.txt").is_file(), reason=f"KITTI test files absent ({KITTI_DIR})"
)

TOL = 1e-12
# format -> (path inside a temporary folder, fields the format stores)
STORES = {
    "json": ("t.json", {"intrinsics", "image_size", "fps", "timestamps"}),
    "npz": ("t.npz", {"intrinsics", "image_size", "fps", "timestamps"}),
    "re10k": ("t.txt", {"intrinsics", "image_size", "timestamps"}),
    "kitti": ("seq", {"intrinsics", "timestamps"}),
    "tum": ("t.txt", {"timestamps"}),
    "colmap": ("model", {"intrinsics", "image_size"}),
}


def random_trajectory(seed: int, frames: int, constant_intrinsics: bool) -> Trajectory:
    """Random rigid poses, translations up to ±100 m, pixel intrinsics, integer-µs timestamps."""
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, :3, :3] = Rotation.random(frames, random_state=rng).as_matrix()
    c2w[:, :3, 3] = rng.uniform(-100, 100, (frames, 3)) * 10.0 ** rng.integers(-3, 1, (frames, 1))
    h, w = (int(x) for x in rng.integers(1, 4000, 2))
    k = np.stack([rng.uniform(10, 5000, frames), rng.uniform(10, 5000, frames)], axis=-1)
    k = np.concatenate([k, rng.uniform(0, 1, (frames, 2)) * [w, h]], axis=-1)
    if constant_intrinsics:
        k = np.repeat(k[:1], frames, axis=0)
    stamps_us = np.cumsum(rng.integers(1, 10**6, frames)) + rng.integers(0, 10**11)
    return Trajectory(
        c2w, intrinsics=k, image_size=(h, w), fps=float(rng.uniform(1, 60)), timestamps=stamps_us / 1e6
    )


def assert_same(back: Trajectory, traj: Trajectory, stored: set[str]) -> None:
    np.testing.assert_allclose(back.c2w, traj.c2w, rtol=0, atol=TOL)
    for field in ("intrinsics", "timestamps"):
        got, want = getattr(back, field), getattr(traj, field)
        if field in stored:
            np.testing.assert_allclose(got, want, rtol=TOL, atol=0)
        else:
            assert got is None
    for field in ("image_size", "fps"):
        assert getattr(back, field) == (getattr(traj, field) if field in stored else None)


# ---------------------------------------------------------------------------------------------------
# Exact round trips


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 6), constant=st.booleans())
def test_round_trip_is_exact(fmt, seed, frames, constant):
    name, stored = STORES[fmt]
    traj = random_trajectory(seed, frames, constant_intrinsics=constant or fmt == "kitti")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        save_trajectory(traj, path, format=fmt)
        back = load_trajectory(path, format=fmt)
    if fmt == "re10k":  # the registry reads normalised intrinsics: pixels of a (1, 1) image
        assert back.image_size == (1, 1)
        back = back.with_intrinsics(
            resize_intrinsics(back.intrinsics, (1, 1), traj.image_size), traj.image_size
        )
    assert_same(back, traj, stored)


def test_every_format_has_a_round_trip_case():
    assert set(FORMATS) == set(STORES)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 5))
def test_re10k_round_trip_in_pixels_keeps_url(seed, frames):
    traj = random_trajectory(seed, frames, constant_intrinsics=False)
    url = "https://www.youtube.com/watch?v=x"
    with tempfile.TemporaryDirectory() as tmp:
        write_re10k(traj, Path(tmp) / "c.txt", url=url)
        back = read_re10k(Path(tmp) / "c.txt", image_size=traj.image_size)
    assert back.url == url
    assert_same(back.trajectory, traj, STORES["re10k"][1])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 5))
def test_colmap_keeps_names_and_kitti_file_path_keeps_poses(seed, frames):
    traj = random_trajectory(seed, frames, constant_intrinsics=False)
    names = [f"img{i}.jpg" for i in range(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        write_colmap(traj, Path(tmp) / "m", names=names)
        model = read_colmap(Path(tmp) / "m" / "images.txt")
        write_kitti(traj, Path(tmp) / "poses_only.txt")
        poses_only = read_kitti(Path(tmp) / "poses_only.txt")
    assert list(model.names) == names
    assert_same(model.trajectory, traj, STORES["colmap"][1])
    assert_same(poses_only, traj, set())


# ---------------------------------------------------------------------------------------------------
# The real files


def numbers(path: Path, skip: int = 0) -> np.ndarray:
    return np.array([line.split() for line in path.read_text().splitlines()[skip:]], dtype=np.float64)


@needs_re10k
@pytest.mark.parametrize("path", RE10K_FILES, ids=lambda p: p.stem)
def test_real_re10k_file_converts_without_loss(path, tmp_path):
    original = read_re10k(path)
    traj = original.trajectory
    assert original.url.startswith("https://") and len(traj) == 16 and traj.image_size == (1, 1)
    # through our JSON and back: identical
    save_trajectory(traj, tmp_path / "t.json")
    assert_same(load_trajectory(tmp_path / "t.json"), traj, STORES["json"][1])
    # back to RealEstate10K at the published precision: the same bytes
    write_re10k(traj, tmp_path / "same.txt", url=original.url, float_format=RE10K_FLOAT_FORMAT)
    assert (tmp_path / "same.txt").read_text() == path.read_text()
    # at full precision: the same numbers (to float64 rounding of the pose inversion), and reads back exactly
    write_re10k(traj, tmp_path / "full.txt", url=original.url)
    ours, theirs = numbers(tmp_path / "full.txt", 1), numbers(path, 1)
    np.testing.assert_array_equal(ours[:, :7], theirs[:, :7])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)
    assert_same(read_re10k(tmp_path / "full.txt").trajectory, traj, STORES["re10k"][1])
    # in pixels of the clip's frames: intrinsics scale with the image size
    in_pixels = read_re10k(path, image_size=(256, 384)).trajectory
    np.testing.assert_array_equal(in_pixels.intrinsics, traj.intrinsics * [384, 256, 384, 256])


@needs_kitti
def test_real_kitti_converts_without_loss(tmp_path):
    traj = load_trajectory(KITTI_DIR)  # a folder with poses.txt: kitti, with calib.txt and times.txt
    assert len(traj) == 160 and traj.timestamps[0] == 0.0
    np.testing.assert_array_equal(traj.intrinsics[0], [707.0912, 707.0912, 601.8873, 183.1104])
    np.testing.assert_array_equal(traj.c2w[:, :3].reshape(-1, 12), numbers(KITTI_DIR / "poses.txt"))
    save_trajectory(traj, tmp_path / "t.json")
    assert_same(load_trajectory(tmp_path / "t.json"), traj, STORES["json"][1])
    # published precision: the same bytes; calib.txt keeps P0 only, with the same numbers
    write_kitti(traj, tmp_path / "styled", float_format=KITTI_FLOAT_FORMAT)
    for name in ("poses.txt", "times.txt"):
        assert (tmp_path / "styled" / name).read_text() == (KITTI_DIR / name).read_text()
    p0 = next(line for line in (KITTI_DIR / "calib.txt").read_text().splitlines() if line.startswith("P0:"))
    ours = (tmp_path / "styled" / "calib.txt").read_text()
    assert ours.startswith("P0: ") and ours.count("\n") == 1
    np.testing.assert_array_equal(np.array(ours.split()[1:], float), np.array(p0.split()[1:], float))
    # full precision: identical numbers, identical trajectory
    save_trajectory(traj, tmp_path / "full", format="kitti")
    for name in ("poses.txt", "times.txt"):
        np.testing.assert_array_equal(numbers(tmp_path / "full" / name), numbers(KITTI_DIR / name))
    assert_same(load_trajectory(tmp_path / "full"), traj, STORES["kitti"][1])


@needs_kitti
def test_real_kitti_matches_evo(tmp_path):
    file_interface = pytest.importorskip("evo.tools.file_interface")
    traj = read_kitti(KITTI_DIR / "poses.txt")
    np.testing.assert_array_equal(
        np.array(file_interface.read_kitti_poses_file(str(KITTI_DIR / "poses.txt")).poses_se3), traj.c2w
    )
    # our TUM file, read by evo: the same poses (TUM quaternion order qx qy qz qw)
    save_trajectory(traj, tmp_path / "t.tum")
    evo_traj = file_interface.read_tum_trajectory_file(str(tmp_path / "t.tum"))
    np.testing.assert_allclose(np.array(evo_traj.poses_se3), traj.c2w, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(evo_traj.positions_xyz, traj.positions)


# ---------------------------------------------------------------------------------------------------
# Format semantics


def rot_z(deg: float) -> np.ndarray:
    return Rotation.from_euler("z", deg, degrees=True).as_matrix()


def test_re10k_world_to_camera_is_inverted(tmp_path):
    r = Rotation.from_euler("xyz", [10, -35, 70], degrees=True).as_matrix()
    centre = np.array([1.5, -2.0, 0.25])
    t = -r @ centre  # world-to-camera: x_cam = R x_world + t
    row = " ".join(
        repr(float(x)) for x in [0.5, 0.8, 0.5, 0.5, 0.0, 0.0, *np.hstack([r, t[:, None]]).reshape(-1)]
    )
    (tmp_path / "c.txt").write_text(f"https://example.com/v\n1000 {row}\n2000 {row}\n")
    traj = read_re10k(tmp_path / "c.txt", image_size=(100, 200)).trajectory
    np.testing.assert_allclose(traj.positions[0], centre, atol=1e-12)
    np.testing.assert_allclose(
        traj.c2w[0], np.linalg.inv(np.vstack([np.hstack([r, t[:, None]]), [0, 0, 0, 1]]))
    )
    np.testing.assert_array_equal(traj.timestamps, [0.001, 0.002])
    np.testing.assert_array_equal(traj.intrinsics[0], [100.0, 80.0, 100.0, 50.0])


@needs_re10k
def test_re10k_real_camera_centres_agree_both_ways():
    for path in RE10K_FILES:
        w2c = numbers(path, 1)[:, 7:].reshape(-1, 3, 4)
        centres = -np.einsum("fji,fj->fi", w2c[:, :, :3], w2c[:, :, 3])  # −Rᵀt
        traj = read_re10k(path).trajectory
        np.testing.assert_allclose(traj.positions, centres, atol=1e-12)
        w2c44 = np.concatenate([w2c, np.tile([[[0, 0, 0, 1.0]]], (len(w2c), 1, 1))], axis=1)
        np.testing.assert_allclose(traj.c2w, np.linalg.inv(w2c44), atol=1e-6)  # R holds 9 decimals: Rᵀ ≈ R⁻¹


def test_colmap_quaternion_is_scalar_first_world_to_camera(tmp_path):
    q = Rotation.from_euler("z", 90, degrees=True).as_quat()  # x y z w
    (tmp_path / "cameras.txt").write_text("# c\n7 SIMPLE_PINHOLE 640 480 500 320 240\n")
    (tmp_path / "images.txt").write_text(
        f"# i\n3 {q[3]} {q[0]} {q[1]} {q[2]} 1 2 3 7 b.png\n\n"
        "1 1 0 0 0 0 0 0 7 a.png\n10 20 -1 30 40 2\n"  # 2D points line is ignored
    )
    model = read_colmap(tmp_path)
    assert model.names == ("a.png", "b.png")  # ordered by name, not id
    traj = model.trajectory
    np.testing.assert_allclose(traj.c2w[1, :3, :3], rot_z(90).T, atol=1e-15)
    np.testing.assert_allclose(traj.positions[1], -rot_z(90).T @ [1, 2, 3], atol=1e-15)
    np.testing.assert_array_equal(traj.intrinsics, [[500, 500, 320, 240]] * 2)
    assert traj.image_size == (480, 640)
    write_colmap(traj, tmp_path / "out", names=model.names)
    line = (tmp_path / "out" / "images.txt").read_text().splitlines()[6]  # second image
    assert np.allclose([float(x) for x in line.split()[1:5]], [q[3], q[0], q[1], q[2]])


def test_colmap_names_sort_naturally_and_zero_distortion_models_read(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 OPENCV 64 48 50 51 32 24 0 0 0 0\n2 PINHOLE 64 48 60 61 30 20\n")
    (tmp_path / "images.txt").write_text(
        "".join(f"{i} 1 0 0 0 {i} 0 0 {1 + i % 2} frame{i}.jpg\n\n" for i in (10, 2, 1))
    )
    model = read_colmap(tmp_path)
    assert model.names == ("frame1.jpg", "frame2.jpg", "frame10.jpg")
    np.testing.assert_array_equal(model.trajectory.positions[:, 0], [-1, -2, -10])
    np.testing.assert_array_equal(model.trajectory.intrinsics[:, 0], [60, 50, 50])


def test_tum_quaternion_is_scalar_last(tmp_path):
    q = Rotation.from_euler("x", 90, degrees=True).as_quat()  # x y z w
    (tmp_path / "t.txt").write_text(
        f"# comment\n\n1.5 1 2 3 {q[0]} {q[1]} {q[2]} {q[3]}\n2.5 1 2 3 0 0 0 1\n"
    )
    traj = load_trajectory(tmp_path / "t.txt", format="tum")
    np.testing.assert_allclose(traj.c2w[0, :3, :3], Rotation.from_euler("x", 90, degrees=True).as_matrix())
    np.testing.assert_array_equal(traj.positions[0], [1, 2, 3])
    np.testing.assert_array_equal(traj.timestamps, [1.5, 2.5])
    # written back with qw >= 0 for q and −q alike
    (tmp_path / "neg.txt").write_text(f"0 0 0 0 {-q[0]} {-q[1]} {-q[2]} {-q[3]}\n")
    save_trajectory(load_trajectory(tmp_path / "neg.txt", format="tum"), tmp_path / "neg.tum")
    assert float((tmp_path / "neg.tum").read_text().split()[-1]) > 0


def test_format_detection(tmp_path):
    traj = random_trajectory(0, 3, constant_intrinsics=True)
    save_trajectory(traj, tmp_path / "seq", format="kitti")
    save_trajectory(traj, tmp_path / "model", format="colmap")
    assert_same(load_trajectory(tmp_path / "seq"), traj, STORES["kitti"][1])
    assert_same(load_trajectory(tmp_path / "model"), traj, STORES["colmap"][1])
    save_trajectory(traj, tmp_path / "x.txt", format="tum")
    with pytest.raises(ValueError, match="re10k, kitti, tum; pass format="):
        load_trajectory(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="pass format="):
        save_trajectory(traj, tmp_path / "new_folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither cameras.txt"):
        load_trajectory(tmp_path / "empty")


def test_writers_refuse_what_the_format_cannot_hold(tmp_path):
    bare = Trajectory(np.eye(4)[None].repeat(2, axis=0))
    for fmt, name in (("re10k", "x.txt"), ("colmap", "m")):
        with pytest.raises(ValueError, match="with_intrinsics"):
            save_trajectory(bare, tmp_path / name, format=fmt)
    varying = random_trajectory(1, 3, constant_intrinsics=False)
    with pytest.raises(ValueError, match="one set of intrinsics"):
        save_trajectory(varying, tmp_path / "seq", format="kitti")
    with pytest.raises(ValueError, match="frame order"):
        write_colmap(varying, tmp_path / "m", names=["b", "a", "c"])


# ---------------------------------------------------------------------------------------------------
# Malformed inputs: ValueError naming the file, the line and the fix

ROW = "1 0 0 0 0 1 0 0 0 0 1 0"
BAD_ROT = "1 0 0 0 0 2 0 0 0 0 1 0"
RE10K_OK = "100 0.5 0.9 0.5 0.5 0 0 " + ROW
PINHOLE = "1 PINHOLE 64 48 50 50 32 24\n"
# case -> (format, {file name: text}, where the error must point, the fix it must name)
MALFORMED = {
    "re10k-count": ("re10k", {"c.txt": f"url\n{RE10K_OK}\n{RE10K_OK[:-2]}\n"}, "line 3", "fix or remove"),
    "re10k-stamp": ("re10k", {"c.txt": f"url\n1.5{RE10K_OK[3:]}\n"}, "line 2", "integer µs"),
    "re10k-no-url": ("re10k", {"c.txt": f"{RE10K_OK}\n"}, "line 1", "add it"),
    "re10k-number": ("re10k", {"c.txt": f"url\n{RE10K_OK.replace('0.9', 'x')}\n"}, "line 2", "a number"),
    "re10k-rotation": (
        "re10k",
        {"c.txt": f"url\n{RE10K_OK}\n\n200 0.5 0.9 0.5 0.5 0 0 {BAD_ROT}\n"},
        "line 4",
        "re-orthonormalise",
    ),
    "kitti-count": ("kitti", {"poses.txt": f"{ROW}\n{ROW} 5\n"}, "line 2", "fix or remove"),
    "kitti-rotation": ("kitti", {"poses.txt": f"{ROW}\n{BAD_ROT}\n"}, "line 2", "re-orthonormalise"),
    "kitti-times": (
        "kitti",
        {"poses.txt": f"{ROW}\n{ROW}\n", "times.txt": "0\n"},
        "times.txt",
        "one timestamp per pose",
    ),
    "kitti-times-order": (
        "kitti",
        {"poses.txt": f"{ROW}\n{ROW}\n", "times.txt": "0\n0\n"},
        "line 2",
        "strictly increasing",
    ),
    "kitti-calib": (
        "kitti",
        {"poses.txt": f"{ROW}\n", "calib.txt": "P1: 1 0 0 0 0 1 0 0 0 0 1 0\n"},
        "calib.txt",
        "'P0: <12 numbers>'",
    ),
    "tum-count": ("tum", {"t.txt": "# h\n0 1 2 3 0 0 0 1\n1 1 2 3 0 0 1\n"}, "line 3", "comment it out"),
    "tum-quaternion": ("tum", {"t.txt": "0 1 2 3 0 0 0 2\n"}, "line 1", "scalar last"),
    "tum-order": ("tum", {"t.txt": "1 1 2 3 0 0 0 1\n0 1 2 3 0 0 0 1\n"}, "line 2", "sort the file"),
    "colmap-model": (
        "colmap",
        {"cameras.txt": "1 OPENCV_FISHEYE 64 48 50 50 32 24 0 0 0 0\n", "images.txt": ""},
        "line 1",
        "undistort",
    ),
    "colmap-distortion": (
        "colmap",
        {"cameras.txt": "1 SIMPLE_RADIAL 64 48 50 32 24 0.1\n", "images.txt": ""},
        "line 1",
        "undistort",
    ),
    "colmap-image": (
        "colmap",
        {"cameras.txt": PINHOLE, "images.txt": "# h\n1 1 0 0 0 0 0 1 a.png\n"},
        "line 2",
        "IMAGE_ID QW",
    ),
    "colmap-quaternion": (
        "colmap",
        {"cameras.txt": PINHOLE, "images.txt": "1 2 0 0 0 0 0 0 1 a.png\n\n"},
        "line 1",
        "scalar first",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_file_line_and_fix(case, tmp_path):
    fmt, files, where, fix = MALFORMED[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    target = tmp_path if fmt in ("kitti", "colmap") else tmp_path / next(iter(files))
    with pytest.raises(ValueError) as err:
        load_trajectory(target, format=fmt)
    message = str(err.value)
    assert str(tmp_path) in message and where in message and fix in message, message
