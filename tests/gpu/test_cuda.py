"""GPU-only checks (skip without CUDA): run on the device machine with `python -m pytest tests/gpu`."""

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.ops import gdn
from tests.model.helpers import camera_inputs, randomize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

T, GRID = 7, (4, 6)
CHUNKS = (3, 2, 2)


@pytest.fixture
def gdn_kernel(request, monkeypatch):
    """The GDN path for one test (`gdn.gdn_scan`'s setting), through SANAWM_GDN_KERNEL."""
    gdn.set_gdn_kernel(None)
    monkeypatch.setenv("SANAWM_GDN_KERNEL", request.param)
    return request.param


def _setup(dtype):
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).cuda().to(dtype)
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(2, model.cfg.in_channels, T, *GRID, generator=g).cuda().to(dtype)
    ts = (torch.rand(2, T, generator=g) * 1000).cuda()
    text = torch.randn(2, 5, model.cfg.caption_channels, generator=g).cuda().to(dtype)
    camera, plucker = (t.cuda().to(dtype).expand(2, *t.shape[1:]) for t in camera_inputs(T, GRID))
    return model, lat, ts, text, camera, plucker


@pytest.mark.parametrize("gdn_kernel", ["auto", "pytorch", "rows", "memory"], indirect=True)
def test_bf16_cuda_matches_fp32_and_streaming_matches_chunk_causal(gdn_kernel):
    """Per GDN path: "auto" runs bf16 on the row kernel and fp32 on the PyTorch scan, "rows" and
    "memory" run both dtypes on that kernel (where Triton is installed)."""
    m32, lat, ts, text, camera, plucker = _setup(torch.float32)
    mbf, *_ = _setup(torch.bfloat16)
    with torch.no_grad():
        ref = m32(lat, ts, text, None, camera, plucker)
        out = mbf(lat.bfloat16(), ts, text.bfloat16(), None, camera.bfloat16(), plucker.bfloat16())
        assert ((out.float() - ref).norm() / ref.norm()).item() < 5e-2
        full = m32(lat, ts, text, None, camera, plucker, chunks=CHUNKS, kv_window=1)
        state, outs, start = m32.init_stream_state(1), [], 0
        for size in CHUNKS:
            sl = slice(start, start + size)
            o, state = m32.stream_step(
                lat[:, :, sl], ts[:, sl], text, state, None, camera[:, sl], plucker[:, :, sl]
            )
            outs.append(o)
            start += size
        assert ((torch.cat(outs, 2) - full).norm() / full.norm()).item() < 1e-4


@pytest.mark.parametrize("gdn_kernel", ["auto", "memory"], indirect=True)
def test_fully_masked_text_has_finite_gradients_in_bf16(gdn_kernel):
    """A text-dropped sample trains in bf16 on CUDA with finite gradients (training on an H100 once saw
    cuDNN attention return NaN gradients for all-masked rows; the cross-attention no longer passes any);
    on the PyTorch scan ("auto" trains on it) and on the differentiable kernels ("memory")."""
    model, lat, ts, text, camera, plucker = _setup(torch.bfloat16)
    mask = torch.tensor([[True, True, True, False, False], [False] * 5], device="cuda")
    out = model(lat, ts, text, mask, camera, plucker)
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def _stream(model, lat, ts, text, camera, plucker, chunks=(3, 2, 2)):
    state, outs, start = model.init_stream_state(1), [], 0
    for size in chunks:
        sl = slice(start, start + size)
        for _ in range(2):  # a denoising call, then the same chunk again (as the sampler's steps do)
            o, new_state = model.stream_step(
                lat[:, :, sl], ts[:, sl], text, state, None, camera[:, sl], plucker[:, :, sl]
            )
        state = new_state
        outs.append(o)
        start += size
    return torch.cat(outs, 2)


@pytest.mark.parametrize("gdn_kernel", ["auto", "rows"], indirect=True)
def test_compiled_blocks_stream_like_eager(gdn_kernel):
    """`compile_blocks` (what `sanawm generate --compile` uses) changes no output: a compiled streamed
    clip equals the eager one (fp32, TF32 off), across the first chunk, later chunks and a filling window;
    with the PyTorch scan ("auto" on fp32) and with the row kernel (what bf16 inference compiles around)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model, lat, ts, text, camera, plucker = _setup(torch.float32)
    with torch.no_grad():
        eager = _stream(model, lat, ts, text, camera, plucker)
        model.compile_blocks()
        compiled = _stream(model, lat, ts, text, camera, plucker)
        again = _stream(model, lat, ts, text, camera, plucker)  # cached graphs, no recompilation
    assert ((compiled - eager).norm() / eager.norm()).item() < 1e-4
    assert ((again - compiled).norm() / compiled.norm()).item() < 1e-6


def test_ssim_on_cuda_matches_cpu():
    """The evaluation scores frames on the GPU when it has one: same numbers as on the CPU."""
    import numpy as np

    from sanawm.eval.image_metrics import ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 40, 48, 3)).astype(np.uint8)  # more than one CUDA block of 64 frames
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(ssim(a, b, device="cuda"), ssim(a, b, device="cpu"), rtol=1e-6)


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal"])
def test_compiled_training_steps_like_eager(tmp_path, mode):
    """`run.compile` (blocks under torch.compile while training) gives the eager run's losses and
    gradient norms, step for step, in fp32 and in bf16 autocast; the bidirectional evaluation compiles too."""
    from sanawm.training.config import load_config
    from sanawm.training.trainer import Trainer
    from tests.training import FAST, read_metrics

    def run(name, *extra):
        args = [*FAST, f"--run.out_dir={tmp_path / name}", "--run.steps=3", "--run.log_every=1"]
        Trainer(
            load_config("tiny-smoke", [*args, f"--flow.mode={mode}", "--run.device=cuda", *extra])
        ).train()
        return read_metrics(tmp_path / name)

    for precision, rel in (("fp32", 1e-3), ("bf16", 3e-2)):
        eager = run(f"eager-{precision}", f"--run.precision={precision}")
        compiled = run(f"compiled-{precision}", f"--run.precision={precision}", "--run.compile=true")
        for a, b in zip(eager, compiled, strict=True):
            assert b["loss"] == pytest.approx(a["loss"], rel=rel)
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=rel * 3)
