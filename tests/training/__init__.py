"""Training tests. Shared settings: the tiny-smoke preset shrunk to a 2 x 2 latent grid and 5 latent
frames (chunks (2, 3)), so a step takes a fraction of a second on one CPU thread."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

FAST = (
    "--data.size=64,64",
    "--data.latent_frames=5",
    "--flow.first_chunk=2",
    "--run.progress=false",
    "--run.tensorboard=false",
    "--run.device=cpu",
)


def read_metrics(out_dir: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines() if line]


def run_two_ranks_beside(train_args: list[str], reference) -> list[str]:
    """Start `sanawm train *train_args` as ranks 0 and 1 of a gloo world (the environment torchrun
    sets, without its launcher), run `reference()` on one thread meanwhile, and return the ranks'
    outputs after checking that both succeeded."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "sanawm.cli.main", "train", *train_args]
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
        reference()
    finally:
        torch.set_num_threads(threads)
    outputs = [p.communicate(timeout=300)[0] for p in ranks]
    for p, output in zip(ranks, outputs, strict=True):
        assert p.returncode == 0, output[-4000:]
    return outputs
