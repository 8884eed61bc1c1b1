"""Exact resume: a run killed after a checkpoint and resumed in fresh trainer state logs the same losses
and ends with the same weights as an uninterrupted run; a crash while saving never harms the previous
checkpoint."""

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sanawm.training import checkpoint as ckpt_module
from sanawm.training.config import load_config
from sanawm.training.trainer import Trainer

from . import FAST, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class Killed(Exception):
    pass


def config(out, steps=6):
    # camera dropout 0.3 and text dropout 0.3 so both kinds of step occur in six steps
    extra = [
        "--run.ckpt_every=3",
        "--run.log_every=1",
        "--flow.dropout.camera=0.3",
        "--flow.dropout.text=0.3",
    ]
    return load_config("tiny-smoke", [*FAST, f"--run.out_dir={out}", f"--run.steps={steps}", *extra])


def scramble_process_state():
    """What a new process would have: unrelated global RNG states."""
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)


def test_resume_after_a_kill_repeats_the_uninterrupted_run_exactly(tmp_path, monkeypatch):
    whole = Trainer(config(tmp_path / "whole")).train()
    assert whole["step"] == 6

    killed = Trainer(config(tmp_path / "killed"))
    step = killed.train_step

    def dies_at_step_5(batch):
        if killed.step == 4:  # steps 1-4 done and logged, checkpoint at 3 only
            raise Killed
        return step(batch)

    monkeypatch.setattr(killed, "train_step", dies_at_step_5)
    with pytest.raises(Killed):
        killed.train()
    assert [r["step"] for r in read_metrics(tmp_path / "killed")] == [1, 2, 3, 4]

    scramble_process_state()
    resumed = Trainer(config(tmp_path / "killed"), resume=True)
    assert resumed.step == 3 and resumed.position == 6
    resumed.train()

    a, b = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]  # step 4's first log was dropped on resume
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["grad_norm"] for r in a] == [r["grad_norm"] for r in b]
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    for name in ("model.safetensors", "ema.safetensors"):
        wa = load_file(tmp_path / "whole" / "checkpoints" / "step_00000006" / name)
        wb = load_file(tmp_path / "killed" / "checkpoints" / "step_00000006" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = Trainer(config(out))
    save = torch.save

    def crash_on_step_6(obj, path, *args, **kwargs):
        if "step_00000006" in str(path):
            raise Killed
        return save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt_module.torch, "save", crash_on_step_6)
    with pytest.raises(Killed):
        trainer.train()
    monkeypatch.undo()
    root = out / "checkpoints"
    assert (root / "latest").read_text().strip() == "step_00000003"
    assert [p.name for p in ckpt_module.list_checkpoints(root)] == ["step_00000003"]
    assert any(p.name.startswith(".tmp-step_00000006") for p in root.iterdir())  # the torn write
    ckpt = ckpt_module.load_checkpoint(out)
    assert ckpt.trainer["step"] == 3 and ckpt.ema is not None
    resumed = Trainer(config(out), resume=True)
    assert resumed.step == 3
    assert resumed.train()["step"] == 6


def test_out_dir_guards(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="drop --resume"):
        Trainer(config(out), resume=True)
    Trainer(config(out, steps=3)).train()
    with pytest.raises(ValueError, match="pass --resume"):
        Trainer(config(out, steps=3))
