"""Batch mode: a corrupt video, a static clip and a clip with a scene cut each get a clear verdict, the
batch goes on, and a second run resumes instead of redoing them."""

from __future__ import annotations

import json

import numpy as np

from sanawm.annotate import annotate_batch
from sanawm.cli.main import main
from sanawm.data.video import write_video
from tests.annotate.conftest import textured_pan


def _make_folder(root):
    root.mkdir()
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    write_video(root / "static.mp4", np.repeat(textured_pan(1), 12, axis=0), fps=10)
    cut = np.concatenate([textured_pan(8, seed=1), textured_pan(8, seed=2)])
    write_video(root / "cut.mp4", cut, fps=10)
    (root / "readme.txt").write_text("not a clip")
    return root


def test_batch_verdicts_and_resume(tmp_path):
    src = _make_folder(tmp_path / "videos")
    out = tmp_path / "out"
    summary = annotate_batch(src, out, workers=2, progress=False)
    verdicts = {c["name"]: c for c in summary["clips"]}
    assert set(verdicts) == {"corrupt", "static", "cut"}
    assert verdicts["corrupt"]["verdict"] == "failed"
    assert "corrupt" in verdicts["corrupt"]["reasons"][0]
    assert verdicts["static"]["verdict"] == "rejected"
    assert any("too little motion" in r for r in verdicts["static"]["reasons"])
    assert verdicts["cut"]["verdict"] == "rejected"
    assert any("scene cut" in r for r in verdicts["cut"]["reasons"])
    assert (summary["failed"], summary["rejected"], summary["accepted"]) == (1, 2, 0)
    assert json.loads((out / "batch.json").read_text())["items"] == 3

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/report.json")}
    again = annotate_batch(src, out, workers=1, progress=False)
    assert again["clips"] == summary["clips"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/report.json")} == stamps  # resumed, not redone


def test_cli_single_clip_verdict_and_batch_hint(tmp_path, capsys):
    src = _make_folder(tmp_path / "videos")
    assert main(["annotate", str(src / "corrupt.mp4"), "--out", str(tmp_path / "c")]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert main(["annotate", str(src / "static.mp4"), "--out", str(tmp_path / "s")]) == 0
    assert "rejected (too little motion" in capsys.readouterr().out
    assert main(["annotate", str(src), "--out", str(tmp_path / "b")]) == 2
    assert "add --batch" in capsys.readouterr().err
    assert main(["annotate", str(src), "--out", str(tmp_path / "b"), "--batch"]) == 0
    assert "3 clips: 0 accepted, 2 rejected, 1 failed" in capsys.readouterr().out
