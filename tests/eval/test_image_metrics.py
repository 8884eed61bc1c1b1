"""PSNR and SSIM: exact values on hand-computed cases and the properties that define them."""

import math

import numpy as np
import pytest

from sanawm.eval.image_metrics import gaussian_window, psnr, ssim


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        np.clip(img.astype(np.float64) + rng.normal(0.0, sigma, img.shape), 0, 255).round().astype(np.uint8)
    )


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A 48x64 RGB frame with smooth gradients and edges (structure for SSIM to see)."""
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 3.5, y * 4.5, 128 + 80 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    img[10:30, 20:40] = [240, 30, 60]
    return np.clip(img, 0, 255).astype(np.uint8)


def test_identical_frames_are_perfect(frame):
    assert psnr(frame, frame) == math.inf
    assert ssim(frame, frame) == pytest.approx(1.0, abs=1e-12)
    batch = np.stack([frame, frame[::-1]])
    assert np.all(psnr(batch, batch) == math.inf)
    np.testing.assert_allclose(ssim(batch, batch), [1.0, 1.0], atol=1e-12)


def test_psnr_hand_computed():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)  # MSE = 100
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    # one pixel of one channel off by 255 in a 2x2x3 image: MSE = 255² / 12
    c = np.zeros((2, 2, 3), np.uint8)
    d = c.copy()
    d[0, 0, 0] = 255
    assert psnr(c, d) == pytest.approx(10 * math.log10(12))
    assert psnr(c / 255.0, d / 255.0, data_range=1.0) == pytest.approx(10 * math.log10(12))


def test_ssim_constant_images_hand_computed():
    """Constant frames x, y: no variance, so SSIM = (2xy + C1) / (x² + y² + C1) exactly."""
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-12)
    # the same on [0, 1] floats with data_range 1
    assert ssim(a / 255.0, b / 255.0, data_range=1.0) == pytest.approx(ssim(a, b), rel=1e-12)


def test_ssim_hand_computed_pattern_vs_flat():
    """An 11x11 pattern x (one window position) against a flat y: σy = σxy = 0, so
    SSIM = (2 μx μy + C1) · C2 / ((μx² + μy² + C1)(σx² + C2)), with μx, σx² from the Gaussian weights."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (11, 11, 1)).astype(np.float64)  # one window position exactly
    y = np.full_like(x, 77.0)
    g = gaussian_window().numpy()
    mx = (g * x[..., 0]).sum()
    vx = (g * x[..., 0] ** 2).sum() - mx**2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    want = (2 * mx * 77 + c1) * c2 / ((mx**2 + 77**2 + c1) * (vx + c2))
    assert ssim(x, y) == pytest.approx(want, rel=1e-6)


def test_gaussian_window():
    g = gaussian_window()
    assert g.shape == (11, 11)
    assert float(g.sum()) == pytest.approx(1.0)
    assert float(g[5, 5]) == float(g.max())
    np.testing.assert_allclose(g.numpy(), g.numpy().T)


def test_noise_lowers_both_monotonically(frame):
    sigmas = [2, 5, 10, 20, 40]
    batch = np.stack([noisy(frame, s) for s in sigmas])
    ref = np.repeat(frame[None], len(sigmas), 0)
    p, s = psnr(batch, ref), ssim(batch, ref)
    assert p.shape == s.shape == (len(sigmas),)
    assert np.all(np.diff(p) < 0)
    assert np.all(np.diff(s) < 0)
    assert np.all(s < 1.0) and np.all(np.isfinite(p))


def test_symmetric_and_batch_matches_single(frame):
    other = noisy(frame, 15, seed=1)
    assert ssim(frame, other) == pytest.approx(ssim(other, frame), rel=1e-12)
    assert psnr(frame, other) == pytest.approx(psnr(other, frame), rel=1e-12)
    batch = ssim(np.stack([frame, other]), np.stack([other, other]))
    assert batch[0] == pytest.approx(ssim(frame, other), rel=1e-12)
    assert batch[1] == pytest.approx(1.0)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="same shape"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), data_range=0)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        psnr(np.zeros((4, 4)), np.zeros((4, 4)))
