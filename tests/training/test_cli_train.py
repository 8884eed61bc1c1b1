"""`sanawm train`: a smoke run writes its config, metrics and a checkpoint; --resume continues it."""

import json

import pytest

from sanawm.cli.main import main

from . import FAST, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_smoke_writes_metrics_and_a_checkpoint_then_resumes(tmp_path, capsys):
    out = tmp_path / "tmp"
    assert main(["train", "tiny-smoke", "--run.steps=3", f"--run.out_dir={out}", *FAST]) == 0
    captured = capsys.readouterr()
    assert f"writing to {out.resolve()}" in captured.err + captured.out
    summary = json.loads(captured.out[captured.out.index("{") :])
    assert summary["step"] == 3 and summary["checkpoint"].endswith("step_00000003")
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"step", "loss", "lr", "grad_norm", "it_s"}
    ckpt = out / "checkpoints" / "step_00000003"
    for name in ("model.safetensors", "ema.safetensors", "optimizer.pt", "trainer.pt", "config.yaml"):
        assert (ckpt / name).is_file(), name
    assert (out / "config.yaml").read_text() == (ckpt / "config.yaml").read_text()
    assert "steps: 3" in (out / "config.yaml").read_text()

    assert main(["train", "tiny-smoke", "--resume", "--run.steps=4", f"--run.out_dir={out}", *FAST]) == 0
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4]


def test_train_errors_are_reported_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "tiny-smoke", "--optim.lrr=1", f"--run.out_dir={tmp_path}"]) == 2
    assert "did you mean optim.lr" in capsys.readouterr().err
    assert main(["train", "tiny-smoke", "--resume", f"--run.out_dir={tmp_path / 'none'}", *FAST]) == 2
    assert "drop --resume" in capsys.readouterr().err
