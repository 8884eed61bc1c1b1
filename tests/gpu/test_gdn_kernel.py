"""The Triton GDN scan against the PyTorch scan, on the GPU (skips without CUDA or Triton).

Tolerances: fp32 inputs with fp32 (ieee) products agree to 1e-5 relative; bf16 inputs run their products
in tf32 (10-bit mantissa), compared with the fp32 scan of the same bf16 values: 5e-3."""

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.ops import gdn_triton
from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_parallel, gdn_scan, to_fp32
from tests.model.helpers import camera_inputs, randomize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not gdn_triton.AVAILABLE, reason="needs Triton"),
]


def _map(x: GDNInputs, fn) -> GDNInputs:
    fields = (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den)
    return GDNInputs(*(None if t is None else fn(t) for t in fields))


def _inputs(B, H, T, S, D, Dv, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g, device="cuda")

    x = GDNInputs(
        r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, Dv) - 0.5, r(B, H, T, S),
        0.6 + 0.4 * r(B, H, T), r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5,
    )  # fmt: skip
    x = _map(x, lambda t: t.to(dtype) if t.dim() == 5 else t)  # gates stay fp32, as in the network
    state = GDNState(0.1 * r(B, H, Dv, D), 0.1 * r(B, H, D))
    return x, state


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("chunks", [None, (4, 3, 3, 1)], ids=["bidirectional", "chunk-causal"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 5e-3)], ids=["fp32", "bf16"])
@pytest.mark.parametrize("with_state", [False, True])
def test_kernel_equals_pytorch_scan(chunks, dtype, tol, with_state):
    for seed, (B, H, S, D, Dv) in enumerate([(2, 3, 37, 112, 112), (1, 2, 64, 24, 40)]):
        x, state = _inputs(B, H, 11, S, D, Dv, dtype, seed)
        state = state if with_state else None
        ref = gdn_parallel(to_fp32(x), chunks, state)
        out = gdn_triton.gdn_scan_triton(x, chunks, state)
        assert torch.isfinite(out.num).all() and torch.isfinite(out.den).all()
        assert _rel(out.num, ref.num) < tol and _rel(out.den, ref.den) < tol
        assert _rel(out.state.num, ref.state.num) < tol and _rel(out.state.den, ref.state.den) < tol


def test_numerator_only_rule():
    x, state = _inputs(1, 2, 9, 40, 32, 32, torch.float32, 7)
    x = GDNInputs(x.q, x.k, x.v, x.beta, x.decay)
    ref = gdn_parallel(x, (4, 5), GDNState(state.num))
    out = gdn_triton.gdn_scan_triton(x, (4, 5), GDNState(state.num))
    assert out.den is None and out.state.den is None
    assert _rel(out.num, ref.num) < 1e-5 and _rel(out.state.num, ref.state.num) < 1e-5


def test_dispatch_uses_the_kernel_only_without_gradients(monkeypatch):
    x, state = _inputs(1, 2, 5, 16, 16, 16, torch.float32, 3)
    calls = []
    real = gdn_triton.gdn_scan_triton
    monkeypatch.setattr(gdn_triton, "gdn_scan_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        gdn_scan(x, None, state)
    assert calls == [1]
    xg = GDNInputs(x.q.requires_grad_(), x.k, x.v, x.beta, x.decay, x.q_den, x.k_den)
    out = gdn_scan(xg, None, state)
    assert calls == [1] and out.num.requires_grad  # the differentiable PyTorch scan
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "0")
    with torch.no_grad():
        gdn_scan(x, None, state)
    assert calls == [1]


def test_network_with_kernel_equals_network_without(monkeypatch):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).cuda()
    g = torch.Generator().manual_seed(1)
    T, grid = 7, (4, 6)
    lat = torch.randn(1, model.cfg.in_channels, T, *grid, generator=g).cuda()
    ts = (torch.rand(1, T, generator=g) * 1000).cuda()
    text = torch.randn(1, 5, model.cfg.caption_channels, generator=g).cuda()
    camera, plucker = (t.cuda() for t in camera_inputs(T, grid))
    with torch.no_grad():
        for chunks in (None, (3, 2, 2)):
            fast = model(lat, ts, text, None, camera, plucker, chunks=chunks, kv_window=1)
            monkeypatch.setenv("SANAWM_GDN_KERNEL", "0")
            slow = model(lat, ts, text, None, camera, plucker, chunks=chunks, kv_window=1)
            monkeypatch.delenv("SANAWM_GDN_KERNEL")
            assert _rel(fast, slow) < 1e-5
