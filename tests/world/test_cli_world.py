"""`sanawm world render | show | render-trajectory`: clips on disk, resumable, the oracle, clear errors."""

import json

import numpy as np
import pytest

from sanawm.cameras import Trajectory
from sanawm.cameras.formats import save_trajectory
from sanawm.cli.main import main
from sanawm.data.clip import read_clip
from sanawm.data.manifest import MANIFEST


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_render_writes_clips_resumes_and_shows(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["world", "render", "--scenes", "2", "--seed", "5", "--seconds", "0.5", "--size", "32x48",
            "--fps", "8", "--out", str(out), "--depth", "--kinds", "walk,revisit"]  # fmt: skip
    assert main(args) == 0
    summary = _json(capsys)
    assert summary["clips_rendered"] == 2 and summary["clips_failed"] == 0
    assert (out / MANIFEST).is_file()
    lines = [json.loads(x) for x in (out / MANIFEST).read_text().splitlines()]
    assert [x["scene_seed"] for x in lines] == [5, 6]

    clip = read_clip(out / "world_000005")
    assert len(clip) == 5 and clip.meta.size == (32, 48) and clip.meta.fps == 8
    assert clip.meta.licence == "CC0-1.0" and clip.meta.source == "sanawm procedural world"
    assert clip.meta.caption and clip.meta.extra["path"]["kind"] in ("walk", "revisit")
    assert clip.meta.extra["scene"]["objects"] and clip.has_depth
    assert np.allclose(
        clip.trajectory.intrinsics[0],
        [48 / (2 * np.tan(np.radians(30))), 48 / (2 * np.tan(np.radians(30))), 23.5, 15.5],
    )
    depth = clip.depth()
    assert depth.shape == (5, 32, 48) and (depth[np.isfinite(depth)] > 0.3).all()

    # The dataset class reads rendered clips like any other: frames, cameras, caption, resized intrinsics.
    from sanawm.data import ClipDataset

    item = ClipDataset(out, num_frames=5, size=(16, 24))[0]
    assert item["video"].shape == (5, 3, 16, 24) and float(item["video"].abs().max()) <= 1.0
    assert np.allclose(item["c2w"].numpy(), clip.trajectory.c2w, atol=1e-5)
    assert np.allclose(item["intrinsics"][0].numpy(), clip.trajectory.intrinsics[0] / 2, atol=1e-5)
    assert item["caption"] == clip.meta.caption

    # Resumable: the finished clips are skipped, a missing one is rendered.
    assert main(args[:3] + ["3"] + args[4:]) == 0
    again = _json(capsys)
    assert again["clips_skipped_complete"] == 2 and again["clips_rendered"] == 1

    sheet = tmp_path / "sheet.png"
    assert main(["world", "show", str(out / "world_000005"), "-o", str(sheet), "--frames", "4"]) == 0
    shown = _json(capsys)
    assert sheet.is_file() and (tmp_path / "sheet_trajectory.png").is_file()
    assert shown["frames_shown"] == [0, 1, 3, 4]


def test_render_trajectory_is_the_oracle(tmp_path, capsys):
    from sanawm.world.paths import path_for
    from sanawm.world.scene import build_scene

    traj = path_for(build_scene(3), seed=0, kind="orbit", seconds=0.5, fps=8, size=(24, 32))
    path = save_trajectory(traj, tmp_path / "traj.json")
    clip_dir = tmp_path / "oracle"
    assert main(["world", "render-trajectory", "--scene-seed", "3", "--trajectory", str(path),
                 "--size", "48x64", "--out", str(clip_dir)]) == 0  # fmt: skip
    result = _json(capsys)
    assert result["clearance_ok"] and result["size"] == [48, 64]
    clip = read_clip(clip_dir)
    assert np.allclose(clip.trajectory.c2w, traj.c2w)
    assert np.allclose(clip.trajectory.intrinsics[0, :2], traj.intrinsics[0, :2] * 2)  # rescaled to 48x64
    assert clip.meta.scene_seed == 3

    # Refuses to overwrite without --overwrite, with a clear message.
    assert main(["world", "render-trajectory", "--scene-seed", "3", "--trajectory", str(path),
                 "--out", str(clip_dir)]) == 2  # fmt: skip
    assert "--overwrite" in capsys.readouterr().err


def test_render_trajectory_warns_on_collisions_and_can_place_paths(tmp_path, capsys):
    c2w = np.tile(np.eye(4), (5, 1, 1))  # at the world origin: on the floor, so it collides
    c2w[:, 2, 3] = np.linspace(0, 0.5, 5)
    path = save_trajectory(Trajectory(c2w, fps=16), tmp_path / "ahead.json")
    base = ["world", "render-trajectory", "--scene-seed", "4", "--trajectory", str(path), "--size", "32",
            "--fov", "70"]  # fmt: skip
    assert main(base + ["--out", str(tmp_path / "as_given")]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "closer than 0.3 m" in captured.err
    assert json.loads(captured.out)["clearance_ok"] is False
    meta = read_clip(tmp_path / "as_given").meta
    assert meta.extra["clearance"]["frames_too_close"] == [0, 1, 2, 3, 4]
    assert np.allclose(read_clip(tmp_path / "as_given").trajectory.c2w, c2w)  # rendered as given

    assert main(base + ["--place", "--out", str(tmp_path / "placed")]) == 0
    placed = _json(capsys)
    assert placed["placed"] and placed["clearance_ok"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fov", "130"], "outside [25°, 120°]"),
        (["--size", "33"], "even"),
        (["--kinds", "walk,jump"], "unknown kind"),
        (["--seconds", "90"], "--seconds"),
    ],
)
def test_render_errors_name_the_fix(tmp_path, capsys, extra, message):
    assert main(["world", "render", "--scenes", "1", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_clip_depth_can_be_stored_as_float16(tmp_path):
    from sanawm.world.clips import render_world_clip

    summary = render_world_clip(
        tmp_path / "c", 3, seconds=0.25, fps=8, size=32, depth=True, depth_dtype="float16"
    )
    clip = read_clip(tmp_path / "c")
    assert summary["frames"] == 3 and clip.depth().dtype == np.float16
    with pytest.raises(ValueError, match="float16"):
        render_world_clip(tmp_path / "d", 3, seconds=0.25, depth=True, depth_dtype="int8")
