"""manifest.jsonl: deterministic scan of clip folders, broken and hidden folders left out, clear errors."""

from __future__ import annotations

import json

import pytest

from sanawm.data import ManifestEntry, read_manifest, write_clip, write_manifest
from tests.data import FPS, H, W, moving_trajectory, smooth_frames


def test_manifest_lists_clips_sorted_and_skips_broken_and_hidden(tmp_path):
    for rel, n, seed in (("b/clip2", 8, 2), ("a", 12, None), ("b/clip10", 6, 10)):
        write_clip(
            tmp_path / rel, smooth_frames(n), moving_trajectory(n), caption=f"c {rel}", scene_seed=seed
        )
    write_clip(tmp_path / ".a.tmp-1234", smooth_frames(4), moving_trajectory(4))  # an interrupted write
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "meta.json").write_text("{")
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 broken clip folder.*broken"):
        path = write_manifest(tmp_path)
    assert path == tmp_path / "manifest.jsonl"
    entries = read_manifest(tmp_path)
    assert [e.path for e in entries] == ["a", "b/clip10", "b/clip2"]
    assert entries[0] == ManifestEntry("a", 12, FPS, (H, W), "c a", "", None)
    assert entries[1].scene_seed == 10 and entries[2].num_frames == 8
    first = path.read_bytes()
    assert json.loads(first.splitlines()[0]) == {
        "path": "a", "num_frames": 12, "fps": FPS, "size": [H, W], "caption": "c a", "source": "",
        "scene_seed": None,
    }  # fmt: skip
    with pytest.warns(UserWarning):
        write_manifest(tmp_path)
    assert path.read_bytes() == first, "the manifest must be deterministic"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".manifest")]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no manifest.jsonl; create it with sanawm.data.write_manifest"
    ):
        read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_manifest(tmp_path / "nope")
    good = {
        "path": "a",
        "num_frames": 3,
        "fps": 16,
        "size": [64, 96],
        "caption": "",
        "source": "",
        "scene_seed": 1,
    }
    lines = [json.dumps(good), json.dumps({**good, "size": [64]}), "{oops"]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match="line 2 is not a valid manifest entry.*write_manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(lines[0] + "\n\n" + lines[2] + "\n")
    with pytest.raises(ValueError, match="line 3"):
        read_manifest(tmp_path)


def test_empty_root_gives_an_empty_manifest(tmp_path):
    assert write_manifest(tmp_path).read_text() == ""
    assert read_manifest(tmp_path) == []
