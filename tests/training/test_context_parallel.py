"""Trainer-driven context parallelism: two gloo ranks forming one CP group (run.context_parallel=2)
split the 16 latent frames of each clip and reach the losses of one process (≤ 1e-5 relative)."""

import pytest
import torch.distributed as dist

from sanawm.training.config import load_config
from sanawm.training.trainer import Trainer

from . import FAST, read_metrics, run_two_ranks_beside

ARGS = (
    *FAST,
    "--data.latent_frames=16",  # chunks (4, 3, 3, 3, 3); 8 frames a rank
    "--flow.first_chunk=4",
    "--data.batch_size=2",
    "--run.steps=5",
    "--run.log_every=1",
    "--run.ckpt_every=100",
)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_context_parallel_on_two_gloo_ranks_matches_one_process(tmp_path):
    run_two_ranks_beside(
        ["tiny-smoke", *ARGS, "--run.context_parallel=2", f"--run.out_dir={tmp_path / 'cp'}"],
        lambda: Trainer(load_config("tiny-smoke", [*ARGS, f"--run.out_dir={tmp_path / 'one'}"])).train(),
    )

    one, cp = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "cp")
    assert [r["step"] for r in one] == [r["step"] for r in cp] == list(range(1, 6))
    for a, b in zip(one, cp, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a, b)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4), (a, b)


def test_context_parallel_needs_a_multiple_of_ranks(tmp_path):
    cfg = load_config("tiny-smoke", [*ARGS, "--run.context_parallel=2", f"--run.out_dir={tmp_path}"])
    with pytest.raises(ValueError, match="must divide the number of ranks"):
        Trainer(cfg)
