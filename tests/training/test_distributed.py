"""Acceptance 1 of issue 5: two CPU processes under gloo with FSDP2 reach the same losses as one process
with the same global batch (≤ 1e-4 relative over 20 steps).

The two ranks are started the way torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT in the environment of `python -m sanawm.cli.main train ...`), without torchrun's launcher
process, which would cost a few more seconds of start-up on a two-core machine."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from sanawm.training.config import load_config
from sanawm.training.distributed import shutdown
from sanawm.training.trainer import Trainer

from . import FAST, read_metrics, run_two_ranks_beside

ARGS = (*FAST, "--data.batch_size=2", "--run.steps=20", "--run.log_every=1", "--run.ckpt_every=100")


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_fsdp2_on_two_gloo_ranks_matches_one_process(tmp_path):
    outputs = run_two_ranks_beside(
        ["tiny-smoke", *ARGS, f"--run.out_dir={tmp_path / 'two'}"],
        lambda: Trainer(load_config("tiny-smoke", [*ARGS, f"--run.out_dir={tmp_path / 'one'}"])).train(),
    )
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


def _time_limit_rank(rank, port, out_dir, limit, results):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    args = [*FAST, "--data.batch_size=2", "--run.steps=3", f"--run.time_limit_minutes={limit}"]
    trainer = Trainer(load_config("tiny-smoke", [*args, f"--run.out_dir={out_dir}"]))
    try:
        results.put((rank, trainer.train()))
    finally:
        shutdown(trainer.env)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_time_limit_stops_every_rank_at_the_same_step(tmp_path):
    """Rank 0 is out of time at once, rank 1 never would be: both stop before step 1 and save together
    (a rank that went on training would wait forever for the other's collectives)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    ranks = [
        ctx.Process(target=_time_limit_rank, args=(rank, port, tmp_path, limit, results))
        for rank, limit in ((0, 1e-9), (1, 1e6))
    ]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(timeout=180)
    hung = [p for p in ranks if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, "the ranks did not stop together (deadlock)"
    assert [p.exitcode for p in ranks] == [0, 0]
    summaries = dict(results.get() for _ in ranks)
    for summary in summaries.values():
        assert summary["stopped_at_time_limit"] and summary["step"] == 0
    assert (tmp_path / "checkpoints" / "step_00000000").is_dir()


def test_a_cuda_training_process_leaves_cudnn_attention_out(monkeypatch):
    """init_distributed("cuda") (every trainer's start) turns cuDNN attention off (its backward fails on
    the refiner's cut clips); flash, memory-efficient and math attention stay. Faked CUDA: the flag is
    process state, set the same with or without a device."""
    from sanawm.training.distributed import init_distributed

    before = torch.backends.cuda.cudnn_sdp_enabled()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        env = init_distributed("cuda")
        assert env.device == torch.device("cuda", 0) and not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
