"""Camera-accuracy metrics: Umeyama, SANA-WM-Bench RotErr / TransErr / CamMC, and ATE / RPE against evo."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from sanawm.cameras import Trajectory
from sanawm.eval import Sim3, ate, camera_metrics, fit_alignment, rotation_angle_deg, rpe, umeyama

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KITTI_POSES = SHARED_DATA / "real" / "kitti07" / "poses.txt"

seeds = st.integers(0, 2**32 - 1)
scales = st.floats(0.1, 10.0)
translations = st.tuples(*[st.floats(-100.0, 100.0)] * 3)


def random_sim3(seed: int, scale: float, translation) -> Sim3:
    return Sim3(Rotation.random(random_state=seed).as_matrix(), np.array(translation), scale)


def curved_path(n: int = 49) -> np.ndarray:
    """(n, 4, 4) a camera turning while it moves along a rising arc (camera centres span 3D)."""
    a = np.linspace(0.0, 1.5, n)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("yx", np.stack([a, 0.2 * np.sin(3 * a)], axis=1)).as_matrix()
    c2w[:, :3, 3] = np.stack([3 * np.sin(a), 0.3 * a**2, 3 * (1 - np.cos(a)) + a], axis=1)
    return c2w


def perturb(c2w: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    """The same random noise pattern scaled by `level` (radians of rotation, units of translation)."""
    rng = np.random.default_rng(seed)
    rotvec, shift = rng.normal(size=(len(c2w), 3)), rng.normal(size=(len(c2w), 3))
    out = c2w.copy()
    out[:, :3, :3] = Rotation.from_rotvec(level * rotvec).as_matrix() @ c2w[:, :3, :3]
    out[:, :3, 3] += level * shift
    return out


# ----------------------------------------------------------------------------------------------- Umeyama
@settings(max_examples=60, deadline=None)
@given(seed=seeds, scale=scales, translation=translations)
def test_umeyama_recovers_random_sim3(seed, scale, translation):
    true = random_sim3(seed, scale, translation)
    src = np.random.default_rng(seed).normal(size=(20, 3))
    fit = umeyama(src, true.apply(src))
    np.testing.assert_allclose(fit.R, true.R, atol=1e-9)
    np.testing.assert_allclose(fit.t, true.t, atol=1e-9)
    assert abs(fit.s - true.s) < 1e-9


@settings(max_examples=30, deadline=None)
@given(seed=seeds, translation=translations)
def test_umeyama_rigid_and_coplanar_points(seed, translation):
    """Coplanar points (rank-2 covariance) are where the reflection correction decides the answer."""
    true = random_sim3(seed, 1.0, translation)
    src = np.random.default_rng(seed).normal(size=(10, 3))
    src[:, 2] = 0.0
    fit = umeyama(src, true.apply(src), with_scale=False)
    assert fit.s == 1.0
    np.testing.assert_allclose(fit.R, true.R, atol=1e-9)
    np.testing.assert_allclose(fit.t, true.t, atol=1e-9)


def test_umeyama_never_returns_a_reflection():
    src = np.random.default_rng(0).normal(size=(30, 3))
    mirrored = src * np.array([1.0, 1.0, -1.0])  # best orthogonal fit is the mirror, det -1
    fit = umeyama(src, mirrored)
    assert np.linalg.det(fit.R) == pytest.approx(1.0)
    # The best proper rotation of a mirror image is no better than keeping the points where they are.
    residual = np.sum((fit.apply(src) - mirrored) ** 2)
    assert residual <= np.sum((src - mirrored) ** 2) + 1e-9


@pytest.mark.parametrize(
    "src, dst, match",
    [
        (np.ones((5, 3)), np.random.default_rng(0).normal(size=(5, 3)), "coincide"),
        (np.random.default_rng(0).normal(size=(5, 3)), np.zeros((5, 3)), "coincide"),
        (np.eye(3)[:2], np.eye(3)[1:], "at least 3"),
        (np.outer(np.arange(6.0), [1.0, 2.0, 3.0]), np.random.default_rng(1).normal(size=(6, 3)), "line"),
        (np.zeros((4, 3)), np.zeros((5, 3)), "same shape"),
        (np.full((4, 3), np.nan), np.zeros((4, 3)), "finite"),
    ],
)
def test_umeyama_rejects_degenerate_input(src, dst, match):
    with pytest.raises(ValueError, match=match):
        umeyama(src, dst)


def test_sim3_applies_to_points_poses_and_inverts():
    g = random_sim3(3, 2.5, (1.0, -2.0, 0.5))
    c2w = curved_path(5)
    moved = g.apply_c2w(c2w)
    np.testing.assert_allclose(moved[:, :3, :3], g.R @ c2w[:, :3, :3], atol=1e-12)
    np.testing.assert_allclose(moved[:, :3, 3], 2.5 * c2w[:, :3, 3] @ g.R.T + g.t, atol=1e-12)
    np.testing.assert_allclose(moved[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (5, 1)))
    points = np.random.default_rng(0).normal(size=(7, 3))
    homogeneous = np.c_[points, np.ones(7)] @ g.matrix.T
    np.testing.assert_allclose(g.apply(points), homogeneous[:, :3], atol=1e-12)
    np.testing.assert_allclose(g.inverse().apply(g.apply(points)), points, atol=1e-12)
    with pytest.raises(ValueError, match="scale"):
        Sim3(np.eye(3), np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="rotation"):
        Sim3(np.diag([1.0, 1.0, -1.0]), np.zeros(3))


def test_fit_alignment_modes():
    src = curved_path()[:, :3, 3]
    g = random_sim3(7, 0.4, (3.0, 1.0, -2.0))
    assert fit_alignment(src, g.apply(src), "none").s == 1.0
    assert fit_alignment(src, g.apply(src), "scale").s == pytest.approx(0.4)
    np.testing.assert_allclose(fit_alignment(src, g.apply(src), "scale").R, np.eye(3))
    assert fit_alignment(src, g.apply(src), "se3").s == 1.0
    with pytest.raises(ValueError, match="align must be one of"):
        fit_alignment(src, src, "sim2")


# ----------------------------------------------------------------------------- SANA-WM-Bench camera metrics
@settings(max_examples=30, deadline=None)
@given(seed=seeds, scale=scales, translation=translations)
def test_metrics_invariant_to_sim3_of_the_estimate(seed, scale, translation):
    gt = curved_path()
    est = perturb(gt, 0.05, seed=1)
    moved = random_sim3(seed, scale, translation).apply_c2w(est)
    a, b = camera_metrics(est, gt), camera_metrics(moved, gt)
    for name in ("rot_err_per_frame", "trans_err_per_frame", "cammc_per_frame"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ate(moved, gt).errors, ate(est, gt).errors, rtol=0, atol=1e-9)
    for relation in ("translation", "rotation_deg"):
        np.testing.assert_allclose(
            rpe(moved, gt, relation=relation).errors, rpe(est, gt, relation=relation).errors, atol=1e-9
        )


def test_metrics_are_zero_for_identical_trajectories():
    gt = curved_path()
    for est in (gt, random_sim3(5, 3.0, (10.0, 0.0, -4.0)).apply_c2w(gt)):
        m = camera_metrics(est, gt)
        assert max(m.rot_err, m.trans_err, m.cammc) < 1e-9
        assert ate(est, gt).max < 1e-9
    m = camera_metrics(gt, gt, align="none", reduce="sum")
    assert (m.rot_err, m.trans_err, m.cammc) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("align", ["sim3", "se3", "none"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_errors_grow_monotonically_with_noise(align, seed):
    gt = curved_path()
    levels = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
    results = [camera_metrics(perturb(gt, level, seed), gt, align=align) for level in levels]
    for name in ("rot_err", "trans_err", "cammc"):
        values = [getattr(m, name) for m in results]
        assert values[0] < 1e-9, (name, values)
        assert np.all(np.diff(values) > 0), (name, values)
    ates = [
        ate(perturb(gt, level, seed), gt, align="sim3" if align == "none" else align).rmse for level in levels
    ]
    assert np.all(np.diff(ates) > 0)


def test_known_values_and_mean_versus_sum():
    gt = curved_path(9)
    est = gt.copy()
    est[4, :3, :3] = Rotation.from_euler("z", 10, degrees=True).as_matrix() @ gt[4, :3, :3]
    est[8, :3, 3] += gt[0, :3, :3] @ np.array([0.0, 0.3, 0.4])  # 0.5 in the first camera's frame
    mean = camera_metrics(est, gt, every=1, align="none")
    total = camera_metrics(est, gt, every=1, align="none", reduce="sum")
    expected_rot = np.zeros(9)
    expected_rot[4] = 10.0
    np.testing.assert_allclose(mean.rot_err_per_frame, expected_rot, atol=1e-9)
    np.testing.assert_allclose(mean.trans_err_per_frame, np.eye(9)[8] * 0.5, atol=1e-12)
    assert total.rot_err == pytest.approx(10.0) and mean.rot_err == pytest.approx(10.0 / 9)
    assert total.trans_err == pytest.approx(0.5) and mean.trans_err == pytest.approx(0.5 / 9)
    chord = 2 * np.sqrt(2) * np.sin(np.deg2rad(10) / 2)  # ‖R_z(10°) − I‖_F
    np.testing.assert_allclose(mean.cammc_per_frame[[4, 8]], [chord, 0.5], atol=1e-9)
    assert total.cammc == pytest.approx(9 * mean.cammc)
    assert total.as_dict()["CamMC"] == total.cammc
    assert "sum over 9 frames" in total.convention and "mean" in mean.convention


def test_every_subsamples_from_frame_zero():
    gt = curved_path(49)
    est = perturb(gt, 0.05)
    m = camera_metrics(est, gt, every=4)
    np.testing.assert_array_equal(m.frame_indices, np.arange(0, 49, 4))
    manual = camera_metrics(est[::4], gt[::4], every=1)
    np.testing.assert_allclose(m.rot_err_per_frame, manual.rot_err_per_frame, atol=1e-12)
    np.testing.assert_allclose(m.cammc_per_frame, manual.cammc_per_frame, atol=1e-12)
    assert len(m.trans_err_per_frame) == 13 and m.trans_err == pytest.approx(manual.trans_err)
    assert camera_metrics(est, gt, every=1).rot_err != pytest.approx(m.rot_err)


def test_accepts_trajectories_and_3x4_arrays():
    gt = curved_path()
    est = perturb(gt, 0.05)
    a = camera_metrics(Trajectory(est, fps=16.0), Trajectory(gt))
    b = camera_metrics(est[:, :3], gt)
    np.testing.assert_allclose(a.cammc_per_frame, b.cammc_per_frame, atol=1e-12)


def test_mismatched_lengths_and_bad_arguments_raise_clear_errors():
    gt = curved_path(49)
    est = perturb(gt, 0.05)
    for fn in (camera_metrics, ate, rpe):
        with pytest.raises(ValueError, match="estimate has 13 poses but ground_truth has 49"):
            fn(est[::4], gt)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        camera_metrics(est, gt, every=0)
    with pytest.raises(ValueError, match="reduce must be"):
        camera_metrics(est, gt, reduce="median")
    with pytest.raises(ValueError, match="align must be one of"):
        ate(est, gt, align="sim2")
    with pytest.raises(ValueError, match="relation must be one of"):
        rpe(est, gt, relation="full")
    with pytest.raises(ValueError, match="unit must be one of"):
        rpe(est, gt, unit="seconds")
    with pytest.raises(ValueError, match="no pose pairs"):
        rpe(est, gt, delta=49)
    with pytest.raises(ValueError, match="estimate: poses have shape"):
        camera_metrics(est[0], gt)


def test_degenerate_paths_name_the_fix():
    pan = np.tile(np.eye(4), (17, 1, 1))  # rotation only: every camera centre is the origin
    pan[:, :3, :3] = Rotation.from_euler("y", np.linspace(0, 60, 17)[:, None], degrees=True).as_matrix()
    with pytest.raises(ValueError, match="align='none'"):
        camera_metrics(pan, pan)
    dolly = np.tile(np.eye(4), (17, 1, 1))
    dolly[:, 2, 3] = np.linspace(0.0, 2.0, 17)
    with pytest.raises(ValueError, match="line"):
        camera_metrics(dolly, dolly)
    assert camera_metrics(pan, pan, align="none").rot_err == 0.0


def test_rotation_angle_is_accurate_near_zero_and_180_degrees():
    for deg in (1e-7, 1e-3, 90.0, 179.999, 180.0):
        r = Rotation.from_rotvec(np.deg2rad(deg) * np.array([0.6, 0.0, 0.8])).as_matrix()
        assert rotation_angle_deg(r) == pytest.approx(deg, rel=1e-8)


# ------------------------------------------------------------------------------------- agreement with evo
@pytest.fixture(scope="module")
def kitti():
    """(gt, est): KITTI 07 ground truth and a noisy estimate placed in another Sim(3) frame."""
    if not KITTI_POSES.is_file():
        pytest.skip(f"KITTI test poses {KITTI_POSES} are absent (../shared/data not mounted)")
    rows = np.loadtxt(KITTI_POSES).reshape(-1, 3, 4)
    gt = np.tile(np.eye(4), (len(rows), 1, 1))
    gt[:, :3] = rows
    rng = np.random.default_rng(7)
    est = gt.copy()
    est[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.01, (len(gt), 3))).as_matrix() @ gt[:, :3, :3]
    est[:, :3, 3] += rng.normal(0, 0.3, (len(gt), 3))
    return gt, random_sim3(11, 0.37, (4.0, -1.0, 20.0)).apply_c2w(est)


def evo_pair(gt, est, align):
    from evo.core import trajectory

    ref = trajectory.PosePath3D(poses_se3=list(gt))
    moved = trajectory.PosePath3D(poses_se3=list(est))
    if align != "none":
        moved.align(ref, correct_scale=align == "sim3", correct_only_scale=align == "scale")
    return ref, moved


def assert_matches_evo(ours, metric):
    expected = metric.get_all_statistics()
    assert set(expected) == set(ours.as_dict())
    np.testing.assert_allclose(ours.errors, metric.error, rtol=0, atol=1e-6)
    for key, value in expected.items():
        assert abs(ours.as_dict()[key] - value) <= 1e-6 * max(1.0, abs(value)), key


@pytest.mark.parametrize("align", ["sim3", "se3", "scale", "none"])
def test_ate_matches_evo(kitti, align):
    from evo.core import metrics

    gt, est = kitti
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data(evo_pair(gt, est, align))
    assert_matches_evo(ate(est, gt, align=align), ape)


@pytest.mark.parametrize("align", ["sim3", "se3", "scale", "none"])
@pytest.mark.parametrize("delta, all_pairs", [(1, True), (10, True), (10, False)])
def test_rpe_matches_evo(kitti, align, delta, all_pairs):
    from evo.core import metrics

    gt, est = kitti
    ref, moved = evo_pair(gt, est, align)
    relations = {
        "translation": metrics.PoseRelation.translation_part,
        "rotation_deg": metrics.PoseRelation.rotation_angle_deg,
    }
    for ours, theirs in relations.items():
        metric = metrics.RPE(theirs, delta=delta, all_pairs=all_pairs)
        metric.process_data((ref, moved))
        result = rpe(est, gt, delta=delta, relation=ours, align=align, all_pairs=all_pairs)
        assert_matches_evo(result, metric)


@pytest.mark.parametrize("unit, delta", [("meters", 20.0), ("degrees", 5.0)])
@pytest.mark.parametrize("all_pairs", [True, False])
def test_rpe_by_distance_and_angle_matches_evo(kitti, unit, delta, all_pairs):
    from evo.core import metrics
    from evo.core.units import Unit

    gt, est = kitti
    ref, moved = evo_pair(gt, est, "sim3")
    metric = metrics.RPE(
        metrics.PoseRelation.translation_part, delta=delta, delta_unit=Unit[unit], all_pairs=all_pairs
    )
    metric.process_data((ref, moved))
    assert_matches_evo(rpe(est, gt, delta=delta, unit=unit, all_pairs=all_pairs), metric)
