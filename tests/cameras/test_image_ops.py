"""Intrinsics under resize / crop: parity with diffusers' SANA-WM pipeline and projection consistency."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sanawm.cameras.image_ops import (
    crop_intrinsics,
    resize_and_center_crop_image,
    resize_and_center_crop_intrinsics,
    resize_intrinsics,
)


@pytest.fixture(scope="module")
def cam_utils():
    """diffusers' pipelines/sana_wm/cam_utils.py, loaded on its own (importing diffusers takes seconds)."""
    spec = importlib.util.find_spec("diffusers")
    if spec is None or spec.origin is None:
        pytest.skip("diffusers is not installed")
    path = Path(spec.origin).parent / "pipelines" / "sana_wm" / "cam_utils.py"
    if not path.is_file():
        pytest.skip(f"this diffusers has no {path}")
    module_spec = importlib.util.spec_from_file_location("_reference_sana_wm_cam_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


sizes = st.tuples(st.integers(8, 1500), st.integers(8, 1500))


@settings(max_examples=40, deadline=None)
@given(src=sizes, target=sizes, seed=st.integers(0, 2**32 - 1))
def test_matches_diffusers(cam_utils, src, target, seed):
    rng = np.random.default_rng(seed)
    k = rng.uniform(1, 2000, (3, 4))
    image = Image.new("L", (src[1], src[0]))
    ref_image, ref_src, ref_resized, ref_offset = cam_utils.resize_and_center_crop(image, *target)
    ref_k = cam_utils.transform_intrinsics_for_crop(k, ref_src, ref_resized, ref_offset)
    ours, resized, offset = resize_and_center_crop_intrinsics(k, src, target)
    assert resized == ref_resized[::-1] and offset == ref_offset
    np.testing.assert_array_equal(ours, ref_k)
    np.testing.assert_array_equal(resize_and_center_crop_intrinsics(k[0], src, target)[0], ref_k[0])
    assert ref_image.size == (target[1], target[0])


def test_image_matches_diffusers(cam_utils):
    rng = np.random.default_rng(0)
    for src, target in (((370, 1226), (704, 1280)), ((256, 384), (96, 160)), ((301, 299), (64, 64))):
        image = Image.fromarray(rng.integers(0, 256, (*src, 3), dtype=np.uint8))
        k = np.array([300.0, 310.0, src[1] / 2, src[0] / 2])
        ours, ours_k = resize_and_center_crop_image(image, target, intrinsics=k)
        ref, *geometry = cam_utils.resize_and_center_crop(image, *target)
        assert ours.size == (target[1], target[0])
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
        np.testing.assert_array_equal(ours_k, cam_utils.transform_intrinsics_for_crop(k, *geometry))
    assert resize_and_center_crop_image(image, (32, 32))[1] is None


def project(k: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4,) pinhole intrinsics, (N, 3) camera-frame points -> (N, 2) pixel (u, v)."""
    return np.stack(
        [k[0] * points[:, 0] / points[:, 2] + k[2], k[1] * points[:, 1] / points[:, 2] + k[3]], -1
    )


@settings(max_examples=40, deadline=None)
@given(src=sizes, target=sizes, seed=st.integers(0, 2**32 - 1))
def test_projection_follows_the_pixels(src, target, seed):
    """A 3D point lands on the pixel the resize + crop moves its old pixel to: (s·u − left, s·v − top)."""
    rng = np.random.default_rng(seed)
    k = np.array([*rng.uniform(50, 3000, 2), *rng.uniform(0, 1, 2) * [src[1], src[0]]])
    points = rng.normal(size=(16, 3)) + [0, 0, 6]
    new_k, (rh, rw), (left, top) = resize_and_center_crop_intrinsics(k, src, target)
    before, after = project(k, points), project(new_k, points)
    moved = before * [rw / src[1], rh / src[0]] - [left, top]
    np.testing.assert_allclose(after, moved, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    ("src", "target"), [((120, 200), (240, 320)), ((300, 500), (90, 160)), ((97, 131), (64, 64))]
)
def test_rendered_dot_lands_on_projected_pixel(src, target):
    """Render a blob where a 3D point projects, resize + crop the image, find the blob again.

    The reference's intrinsics map corner-based coordinates (u -> s·u) while pixel centres sit at
    integers, so the blob moves by 0.5·(s − 1) px relative to the prediction (s = the resize scale).
    """
    k = np.array([0.8 * src[1], 0.8 * src[1], 0.47 * src[1], 0.55 * src[0]])
    point = np.array([[0.3, -0.2, 4.0]])
    u, v = project(k, point)[0]
    rows, cols = np.mgrid[: src[0], : src[1]]
    blob = np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 4.0**2)).astype(np.float32)
    out, new_k = resize_and_center_crop_image(Image.fromarray(blob, mode="F"), target, intrinsics=k)
    pixels = np.clip(np.asarray(out, dtype=np.float64), 0, None)
    rows, cols = np.mgrid[: target[0], : target[1]]
    found = np.array([(pixels * cols).sum(), (pixels * rows).sum()]) / pixels.sum()
    scale = resize_and_center_crop_intrinsics(k, src, target)[1][1] / src[1]
    expected = project(new_k, point)[0] + 0.5 * (scale - 1)  # the half-pixel convention gap
    np.testing.assert_allclose(found, expected, atol=0.05)


def test_resize_and_crop_basics():
    k = np.array([[100.0, 110.0, 50.0, 40.0]])
    np.testing.assert_array_equal(resize_intrinsics(k, (80, 100), (80, 100)), k)
    np.testing.assert_array_equal(resize_intrinsics(k, (80, 100), (40, 200)), [[200.0, 55.0, 100.0, 20.0]])
    np.testing.assert_array_equal(crop_intrinsics(k, (10, 5)), [[100.0, 110.0, 40.0, 35.0]])
    # normalised intrinsics (a 1x1 image, as RealEstate10K files keep them) -> pixels
    np.testing.assert_array_equal(
        resize_intrinsics([0.5, 0.9, 0.5, 0.5], (1, 1), (256, 384)), [192, 230.4, 192, 128]
    )
    with pytest.raises(ValueError, match="fx, fy, cx, cy"):
        resize_intrinsics(np.eye(3), (1, 1), (2, 2))
    with pytest.raises(ValueError, match="positive integers"):
        resize_intrinsics(k, (0, 10), (2, 2))
