"""Self-calibration, interpolation of missed frames and the scale modes, on synthetic geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sanawm.annotate.complete import fill_missing_poses, frame_confidence
from sanawm.annotate.scale import align_to_poses, depth_scale, per_frame_scale, relative_scale, smooth_scales
from sanawm.annotate.selfcal import focal_from_fundamentals
from sanawm.eval.align import Sim3


def _skew(t):
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def _fundamentals(f, rotations_deg, rng, size=(640, 360)):
    w, h = size
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    out = []
    for deg in rotations_deg:
        r = Rotation.from_rotvec(np.radians(deg) * rng.normal(size=3) / np.sqrt(3)).as_matrix()
        t = rng.normal(size=3)
        e = _skew(t / np.linalg.norm(t)) @ r
        out.append(np.linalg.inv(k).T @ e @ np.linalg.inv(k))
    return np.stack(out)


@pytest.mark.parametrize("f", [300.0, 520.0, 900.0])
def test_focal_from_fundamentals_recovers_the_focal_length(f):
    rng = np.random.default_rng(0)
    fm = _fundamentals(f, rng.uniform(3, 15, size=40), rng)
    est = focal_from_fundamentals(fm, np.ones(len(fm)), 640, 360)
    assert est.identified and abs(est.focal / f - 1) < 1e-3


def test_pure_translation_does_not_identify_the_focal_length():
    rng = np.random.default_rng(1)
    fm = _fundamentals(500.0, np.zeros(20), rng)
    assert not focal_from_fundamentals(fm, np.ones(len(fm)), 640, 360).identified
    with pytest.raises(ValueError, match="no verified image pairs"):
        focal_from_fundamentals(np.zeros((0, 3, 3)), np.zeros(0), 640, 360)


def _path(n=12):
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("y", np.linspace(0, 40, n)[:, None], degrees=True).as_matrix()
    c2w[:, :3, 3] = np.stack([np.sin(np.linspace(0, 2, n)), 0.1 * np.arange(n), np.linspace(0, 3, n)], 1)
    return c2w


def test_missing_frames_are_interpolated_and_ends_held():
    c2w = _path()
    reg = np.ones(12, bool)
    reg[[0, 5, 6, 11]] = False
    filled = fill_missing_poses(np.where(reg[:, None, None], c2w, np.nan), reg)
    np.testing.assert_allclose(filled[reg], c2w[reg])
    np.testing.assert_allclose(filled[0], c2w[1])  # held before the first registered frame
    np.testing.assert_allclose(filled[11], c2w[10])
    np.testing.assert_allclose(filled[5, :3, 3], c2w[4, :3, 3] + (c2w[7, :3, 3] - c2w[4, :3, 3]) / 3)
    angle = Rotation.from_matrix(c2w[4, :3, :3].T @ filled[5, :3, :3]).magnitude()
    total = Rotation.from_matrix(c2w[4, :3, :3].T @ c2w[7, :3, :3]).magnitude()
    assert angle == pytest.approx(total / 3)
    conf = frame_confidence(reg, np.full(12, 200), np.full(12, 0.5))
    assert (conf[~reg] == 0).all() and np.allclose(conf[reg], np.exp(-0.5 / 4))


def test_align_to_poses_recovers_a_similarity_also_on_a_straight_line():
    gt = _path()
    sim = Sim3(Rotation.from_euler("xyz", [10, -30, 5], degrees=True).as_matrix(), np.array([1.0, 2, 3]), 2.5)
    est = sim.inverse().apply_c2w(gt)
    reg = np.ones(len(gt), bool)
    np.testing.assert_allclose(align_to_poses(est, gt, reg).c2w, gt, atol=1e-9)
    line = gt.copy()
    line[:, :3, 3] = np.outer(np.linspace(0, 4, len(gt)), [0.0, 0.0, 1.0])  # a straight dolly
    res = align_to_poses(sim.inverse().apply_c2w(line), line, reg)
    np.testing.assert_allclose(res.c2w, line, atol=1e-9)
    assert res.alignment.s == pytest.approx(2.5)


def test_depth_scale_is_metric_despite_outliers_and_relative_mode_is_unit_depth():
    rng = np.random.default_rng(3)
    n, h, w, true_scale = 6, 40, 60, 3.0
    depth = rng.uniform(2, 10, size=(n, h, w)).astype(np.float32)
    depth[:, :5] = np.inf  # sky
    obs = []
    for t in range(n):
        u, v = rng.integers(0, w, 200), rng.integers(0, h, 200)
        z = depth[t, v, u] / true_scale
        z[:20] *= rng.uniform(2, 5, 20)  # outliers: moving objects
        obs.append(np.stack([u, v, np.where(np.isfinite(z), z, 1.0)], 1).astype(np.float64))
    reg = np.ones(n, bool)
    np.testing.assert_allclose(per_frame_scale(obs, depth, reg), true_scale, rtol=1e-6)
    c2w = _path(n)
    res = depth_scale(c2w, obs, depth, reg)
    steps = np.linalg.norm(np.diff(res.c2w[:, :3, 3], axis=0), axis=1)
    np.testing.assert_allclose(steps, true_scale * np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1))
    assert res.cv < 1e-6 and "metric" in res.units
    rel = relative_scale(c2w, obs, reg)
    np.testing.assert_allclose(rel.c2w[0], np.eye(4), atol=1e-12)
    assert "median depth" in rel.units


def test_smoothing_starts_at_the_median_and_refuses_no_data():
    s = smooth_scales(np.array([1.0, np.nan, 1.0, 3.0]), momentum=0.5)
    np.testing.assert_allclose(s, [1.0, 1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="no frame has a depth-based scale"):
        smooth_scales(np.array([np.nan, np.nan]))
