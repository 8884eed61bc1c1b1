"""Trajectory plots: a non-empty PNG for one or several paths; clear errors."""

import pytest

from sanawm.cameras.actions import actions_to_trajectory
from sanawm.cameras.plot import plot_trajectory
from sanawm.cameras.presets import make_preset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_one_trajectory(tmp_path):
    out = plot_trajectory(actions_to_trajectory("w-40,lw-75,iw-20", fps=16), tmp_path / "one.png")
    assert out == tmp_path / "one.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_several_trajectories_with_labels_and_ticks(tmp_path):
    trajs = [make_preset("orbit", 81, height=1.0), make_preset("pan", 20), make_preset("random_smooth", 60)]
    out = plot_trajectory(
        trajs, tmp_path / "sub" / "many.png", labels=["orbit", "pan", "random"], tick_every=8
    )
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_errors(tmp_path):
    traj = make_preset("dolly", 10)
    with pytest.raises(ValueError, match="ending in .png"):
        plot_trajectory(traj, tmp_path / "plot.jpg")
    with pytest.raises(ValueError, match="one label per trajectory"):
        plot_trajectory([traj, traj], tmp_path / "p.png", labels=["a"])
    with pytest.raises(ValueError, match="tick_every"):
        plot_trajectory(traj, tmp_path / "p.png", tick_every=0)
    with pytest.raises(ValueError, match="non-empty list"):
        plot_trajectory([], tmp_path / "p.png")


def test_minimap_draws_only_in_its_corner_and_follows_the_camera():
    import numpy as np

    from sanawm.cameras.actions import actions_to_trajectory
    from sanawm.cameras.plot import add_minimap

    traj = actions_to_trajectory("w-10,l-10", fps=16)
    frames = np.full((len(traj), 96, 128, 3), 40, dtype=np.uint8)
    out = add_minimap(frames, traj)
    side = round(0.28 * 96)
    changed = np.any(out != frames, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.max() < 6 + side and cols.min() >= 128 - side - 6  # only the top-right inset
    red = (out[..., 0] > 200) & (out[..., 1] < 120)  # the current-camera marker
    first = np.argwhere(red[0]).mean(0)
    last = np.argwhere(red[10]).mean(0)  # after walking forward: higher on the map
    assert last[0] < first[0] - 3
    try:
        add_minimap(frames[:5], traj)
    except ValueError as err:
        assert "one pose per frame" in str(err)
    else:
        raise AssertionError("length mismatch accepted")
