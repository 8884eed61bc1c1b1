"""The key DSL: pose-for-pose parity with diffusers, errors that name the fix, metric properties."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanawm.cameras.actions import (
    SPEED_PRESETS,
    ActionSegment,
    ActionSpeeds,
    actions_to_c2w,
    actions_to_trajectory,
    get_speeds,
    parse_actions,
)
from sanawm.cameras.trajectory import Trajectory

KEYS = "wasdijkl"
PARITY_STRINGS = (
    [f"{k}-30" for k in KEYS]
    + [f"{a}{b}-25" for a, b in itertools.combinations(KEYS, 2)]
    + ["ws-20", "ad-20", "jl-20", "ik-20", "wasdijkl-15", "none-10", "NONE-3,w-4,none-2"]
    + ["i-100", "k-100", "i-100,k-200,i-40", "il-120,kj-200", "iw-90,dl-40,k-150", "kw-80,jd-30"]
    + [" W-10 , Dw - 20，l-5 ", "\tI-3\n,K-4", "Ww-5", "lLj-7", "w-100,dw-60", "-5,w-3"]
)
SPEEDS = [
    ActionSpeeds(),
    SPEED_PRESETS["streaming"],
    ActionSpeeds(translation=0.1, rotation_deg=3.0, pitch_limit_deg=30.0),
    ActionSpeeds(translation=0.02, rotation_deg=5.0, pitch_limit_deg=85.0),  # 17 steps land on the limit
    ActionSpeeds(translation=0.03, rotation_deg=1.0, pitch_limit_deg=10.0),  # 10 steps land on the limit
]


def diffusers_c2w(action: str, speeds: ActionSpeeds) -> np.ndarray:
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    return cam_utils.action_string_to_c2w(
        action,
        translation_speed=speeds.translation,
        rotation_speed_deg=speeds.rotation_deg,
        pitch_limit_deg=speeds.pitch_limit_deg,
    )


def pitch_deg(c2w: np.ndarray) -> np.ndarray:
    """The camera's pitch (up positive): forward = (…, −sin pitch, …)."""
    return np.degrees(np.arcsin(-c2w[:, 1, 2]))


@pytest.mark.parametrize(
    "speeds", SPEEDS, ids=lambda s: f"{s.translation}-{s.rotation_deg}-{s.pitch_limit_deg}"
)
def test_parity_with_diffusers(speeds):
    for action in PARITY_STRINGS:
        ref = diffusers_c2w(action, speeds)  # float32
        ours = actions_to_c2w(action, speeds)
        assert ours.shape == ref.shape, action
        err = np.abs(ours - ref).max()
        assert err <= 1e-6, f"{action!r}: max |ours − diffusers| = {err:.2e}"


def test_default_speeds_are_diffusers():
    assert get_speeds() == get_speeds("diffusers") == ActionSpeeds(0.05, 1.2, 85.0)
    assert SPEED_PRESETS["streaming"] == ActionSpeeds(0.025, 0.6, 85.0)
    np.testing.assert_array_equal(actions_to_c2w("wdl-20"), actions_to_c2w("wdl-20", "diffusers"))


segment = st.tuples(
    st.sets(st.sampled_from(KEYS), max_size=4).map("".join) | st.just("none"),
    st.integers(1, 40),
)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(segment, min_size=1, max_size=4),
    rotation=st.floats(0.1, 8.0),
    pitch_limit=st.floats(0.0, 89.0),
    translation=st.floats(0.0, 0.05),
)
def test_parity_with_diffusers_random_strings(segments, rotation, pitch_limit, translation):
    action = ",".join(f"{keys}-{n}" for keys, n in segments)
    speeds = ActionSpeeds(translation=translation, rotation_deg=rotation, pitch_limit_deg=pitch_limit)
    assert np.abs(actions_to_c2w(action, speeds) - diffusers_c2w(action, speeds)).max() <= 1e-6


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, needle",
    [
        ("w-10,x-5", "allowed keys: w (forward)"),
        ("wq-10", "unknown key 'q'"),
        ("w-0", "positive whole number of frames"),
        ("w--5", "positive whole number of frames"),
        ("w-1.5", "positive whole number of frames"),
        ("w-abc", "positive whole number of frames"),
        ("w-", "positive whole number of frames"),
        ("w", "no frame count"),
        ("w-5,", "empty segment 2 of 2; remove the extra comma"),
        (",w-5", "empty segment 1 of 2"),
        ("", "empty"),
        ("  \t", "empty"),
    ],
)
def test_errors_name_the_fix(action, needle):
    with pytest.raises(ValueError) as err:
        actions_to_c2w(action)
    assert needle in str(err.value)
    with pytest.raises(ValueError):  # diffusers refuses the same strings
        diffusers_c2w(action, ActionSpeeds())


def test_unknown_key_message_lists_every_allowed_key():
    with pytest.raises(ValueError) as err:
        parse_actions("wz-3")
    for key in KEYS:
        assert f"{key} (" in str(err.value)
    assert "'none'" in str(err.value)


def test_bad_speeds_are_refused():
    with pytest.raises(ValueError, match="pitch_limit_deg"):
        ActionSpeeds(pitch_limit_deg=95.0)
    with pytest.raises(ValueError, match="translation"):
        ActionSpeeds(translation=-0.1)
    with pytest.raises(ValueError, match="diffusers"):
        get_speeds("fast")


# --- properties ------------------------------------------------------------------------------------


def test_parse_sorts_and_dedups_keys():
    assert parse_actions(" Wdw-3，none-2,-1") == [
        ActionSegment("dw", 3),
        ActionSegment("", 2),
        ActionSegment("", 1),
    ]


def test_rollout_has_n_plus_one_poses_from_identity():
    traj = actions_to_trajectory("w-100,dw-60", fps=16)
    assert isinstance(traj, Trajectory) and len(traj) == 161 and traj.fps == 16
    np.testing.assert_array_equal(traj.c2w[0], np.eye(4))
    assert actions_to_trajectory("w-3").fps is None


@pytest.mark.parametrize("speeds", SPEEDS[:3])
def test_pure_forward_moves_along_initial_z(speeds):
    c2w = actions_to_c2w("w-120", speeds)
    np.testing.assert_allclose(c2w[:, :3, :3], np.broadcast_to(np.eye(3), (121, 3, 3)), atol=0)
    np.testing.assert_allclose(
        c2w[:, :3, 3], np.outer(np.arange(121) * speeds.translation, [0, 0, 1]), atol=1e-12
    )


def test_l75_yaws_ninety_degrees_right():
    c2w = actions_to_c2w("l-75")  # 75 × 1.2° = 90°
    np.testing.assert_allclose(c2w[-1, :3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # now looks along +x
    np.testing.assert_allclose(c2w[-1, :3, 3], 0.0, atol=0)
    right = actions_to_c2w("l-75,w-10")[-1, :3, 3]
    np.testing.assert_allclose(right, [0.5, 0.0, 0.0], atol=1e-12)  # 'w' now walks along +x


@pytest.mark.parametrize("speeds", SPEEDS)
def test_pitch_clamp_holds(speeds):
    c2w = actions_to_c2w("i-200,k-400,i-50", speeds)
    pitch = pitch_deg(c2w)
    assert np.all(np.abs(pitch) <= speeds.pitch_limit_deg + 1e-9)
    # the step that would cross the limit is dropped whole: the pitch stops within one step of it
    assert pitch.max() > speeds.pitch_limit_deg - speeds.rotation_deg - 1e-9
    assert pitch.min() < -speeds.pitch_limit_deg + speeds.rotation_deg + 1e-9


def test_pitch_stops_at_84_with_default_speeds():
    assert pitch_deg(actions_to_c2w("i-100"))[-1] == pytest.approx(84.0)
    assert pitch_deg(actions_to_c2w("k-100"))[-1] == pytest.approx(-84.0)


def test_moving_while_pitched_stays_on_the_ground_plane():
    c2w = actions_to_c2w("i-40,wd-30,k-80,sa-30")
    np.testing.assert_allclose(c2w[:, 1, 3], 0.0, atol=1e-15)
    steps = np.linalg.norm(np.diff(c2w[41:71, :3, 3], axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.05 * math.sqrt(2), rtol=1e-12)


def test_opposing_keys_cancel():
    np.testing.assert_allclose(actions_to_c2w("wsadjlik-20"), np.broadcast_to(np.eye(4), (21, 4, 4)), atol=0)


def test_all_poses_rigid():
    c2w = actions_to_c2w("ilw-300,kjd-500,iaw-100")
    r = c2w[:, :3, :3]
    assert np.abs(np.swapaxes(r, 1, 2) @ r - np.eye(3)).max() < 1e-12
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_array_equal(c2w[:, 3], np.broadcast_to([0, 0, 0, 1.0], (901, 4)))


def test_metric_meaning_per_second():
    assert get_speeds("diffusers").per_second(16) == pytest.approx(
        {"translation_per_s": 0.8, "rotation_deg_per_s": 19.2}
    )
    assert get_speeds("streaming").per_second(16) == pytest.approx(
        {"translation_per_s": 0.4, "rotation_deg_per_s": 9.6}
    )


def test_pitch_limit_boundary_follows_diffusers_float_sum():
    # 10 × radians(3) sums to 1e-16 past radians(30), so the 10th step is dropped: the pitch stops at 27°.
    speeds = ActionSpeeds(rotation_deg=3.0, pitch_limit_deg=30.0)
    assert pitch_deg(actions_to_c2w("i-20", speeds))[-1] == pytest.approx(27.0)
    assert pitch_deg(diffusers_c2w("i-20", speeds).astype(np.float64))[-1] == pytest.approx(27.0, abs=1e-4)
