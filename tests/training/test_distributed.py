"""Acceptance 1 of issue 5: two CPU processes under gloo with FSDP2 reach the same losses as one process
with the same global batch (≤ 1e-4 relative over 20 steps).

The two ranks are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT in the environment of `python -m sanawm.cli.main train ...`), without torchrun's launcher
process, which would cost a few more seconds of start-up on a two-core machine."""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from sanawm.training.config import load_config
from sanawm.training.trainer import Trainer

from . import FAST, read_metrics

ARGS = (*FAST, "--data.batch_size=2", "--run.steps=20", "--run.log_every=1", "--run.ckpt_every=100")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_fsdp2_on_two_gloo_ranks_matches_one_process(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "sanawm.cli.main", "train", "tiny-smoke", *ARGS]
    cmd.append(f"--run.out_dir={tmp_path / 'two'}")
    ranks = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1"}
        env.update(MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
        ranks.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the single-process reference runs while the two ranks start up
        Trainer(load_config("tiny-smoke", [*ARGS, f"--run.out_dir={tmp_path / 'one'}"])).train()
    finally:
        torch.set_num_threads(threads)
    outputs = [p.communicate(timeout=300)[0] for p in ranks]
    for p, output in zip(ranks, outputs, strict=True):
        assert p.returncode == 0, output[-4000:]
    assert '"world_size": 2' in outputs[0]

    one, two_rows = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two_rows] == list(range(1, 21))
    for a, b in zip(one, two_rows, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), (a, b)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3), (a, b)

    # rank 0 gathered the sharded weights into a full checkpoint
    wa = load_file(tmp_path / "one" / "checkpoints" / "step_00000020" / "model.safetensors")
    wb = load_file(tmp_path / "two" / "checkpoints" / "step_00000020" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].shape == wb[k].shape
        torch.testing.assert_close(wb[k], wa[k], atol=1e-3, rtol=1e-3)
