"""GPU-only: the refiner's training step runs forward and backward for every target block of a minute-long
clip in bf16, with the attention backends a training process uses (`training_attention_backends`: cuDNN's
attention backward failed on these cut clips on an H100, torch 2.11)."""

import pytest
import torch

from sanawm.distill.trainer import load_network
from sanawm.pipelines.world_model import DEFAULT_MODEL
from sanawm.refine.train import random_batch, refiner_chunks, refiner_loss
from sanawm.training.distributed import training_attention_backends

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture
def training_backends():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    training_attention_backends()
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


def test_refiner_step_backward_on_every_cut_clip(training_backends):
    model = load_network(str(DEFAULT_MODEL), "ema").cuda().train()
    cfg, B, T, H, W = model.cfg, 2, 121, 8, 8
    batch = random_batch(cfg, B, T, (H, W), device="cuda")
    chunks = refiner_chunks(T, 3, 1)
    for j in range(len(chunks) - 1):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = refiner_loss(
                model,
                batch,
                torch.full((B,), j),
                torch.full((B,), 0.5),
                sigma_s=0.909375,
                chunks=chunks,
                kv_window=2,
            )
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert torch.isfinite(loss) and grads and all(torch.isfinite(gr).all() for gr in grads), f"block {j}"
        model.zero_grad(set_to_none=True)
