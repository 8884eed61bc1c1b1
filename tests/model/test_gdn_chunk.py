"""The tensor-core chunk scan (`gdn_chunk.gdn_scan_chunk`) against the float64 reference on the CPU, where
its 16-bit products run in fp32 on the exact 16-bit values (the device runs the CUDA out_dtype products
in tests/gpu/test_gdn_kernel.py); its dispatch ("chunk"); the network on it."""

import pytest
import torch

from sanawm.model.ops import gdn
from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_path, gdn_reference
from sanawm.model.ops.gdn_chunk import gdn_scan_chunk
from tests.model.helpers import tiny_network

# The operands that are not 16-bit numbers (β·K̂ and the fp32 states) enter as hi + lo 16-bit pairs: about
# 16 bits of mantissa, so against the float64 reference of the same 16-bit inputs the error is ~1e-6
# (measured 0.7e-6 .. 2.1e-6 in bf16 at this size); fp32 recurrence.
TOL = 2e-5
FIELDS = ("q", "k", "v", "beta", "decay", "q_den", "k_den")


def _inputs(dtype, T=5, B=2, H=3, S=40, D=16, Dv=12, seed=0, numerator_only=False):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g)

    k, kd = 4 * r(B, H, T, S, D) / (D * S) ** 0.5, 4 * r(B, H, T, S, D) / (D * S) ** 0.5
    x = GDNInputs(
        r(B, H, T, S, D).to(dtype), k.to(dtype), (r(B, H, T, S, Dv) - 0.5).to(dtype), r(B, H, T, S),
        0.6 + 0.4 * r(B, H, T), None if numerator_only else r(B, H, T, S, D).to(dtype),
        None if numerator_only else kd.to(dtype),
    )  # fmt: skip
    state = GDNState(0.1 * r(B, H, Dv, D), None if numerator_only else 0.1 * r(B, H, D))
    return x, state


def _f64(x: GDNInputs, state: GDNState | None):
    x64 = GDNInputs(*(None if t is None else t.double() for t in (getattr(x, f) for f in FIELDS)))
    if state is None:
        return x64, None
    return x64, GDNState(state.num.double(), None if state.den is None else state.den.double())


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunks", [None, (2, 3), (1, 2, 2)])
@pytest.mark.parametrize("with_state", [True, False])
def test_chunk_scan_equals_the_reference(dtype, chunks, with_state):
    x, state = _inputs(dtype)
    state = state if with_state else None
    out = gdn_scan_chunk(x, chunks, state)
    x64, s64 = _f64(x, state)
    ref = gdn_reference(x64, chunks, s64)
    assert out.num.dtype == torch.float32 and out.state.num.dtype == torch.float32
    for a, b in ((out.num, ref.num), (out.den, ref.den), (out.state.num, ref.state.num)):
        assert _rel(a, b) < TOL
    assert _rel(out.state.den, ref.state.den) < TOL


def test_numerator_only_and_one_frame():
    for T in (1, 3):
        x, state = _inputs(torch.bfloat16, T=T, numerator_only=True)
        out = gdn_scan_chunk(x, None, state)
        x64, s64 = _f64(x, state)
        ref = gdn_reference(x64, None, s64)
        assert out.den is None and out.state.den is None
        assert _rel(out.num, ref.num) < TOL and _rel(out.state.num, ref.state.num) < TOL


def test_chunk_scan_refuses_gradients_and_fp32_inputs():
    x, state = _inputs(torch.bfloat16)
    with pytest.raises(RuntimeError, match="no backward.*torch.no_grad"):
        gdn_scan_chunk(x, None, GDNState(state.num.requires_grad_(), state.den))
    x32, _ = _inputs(torch.float32)
    with pytest.raises(ValueError, match="16-bit.*gdn_parallel"):
        gdn_scan_chunk(x32, None, None)


def test_chunk_setting_dispatches_where_it_applies(monkeypatch):
    monkeypatch.delenv("SANAWM_GDN_KERNEL", raising=False)
    x, state = _inputs(torch.bfloat16)
    assert gdn_path(x, state, None, "chunk") == "chunk"  # on the CPU too, when asked for
    assert gdn_path(_inputs(torch.float32)[0], None, None, "chunk") == "pytorch"  # fp32: the PyTorch scan
    with torch.enable_grad():
        grad_state = GDNState(state.num.clone().requires_grad_(), state.den)
        assert gdn_path(x, grad_state, None, "chunk") == "pytorch"  # training: the PyTorch scan
    assert gdn_path(x, state, object(), "chunk") == "pytorch"  # context parallelism
    assert gdn_path(x, state, None, "auto") == "pytorch"  # not chosen by "auto" off CUDA
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "chunk")
    with torch.no_grad():
        out = gdn.gdn_scan(x, None, state)
    x64, s64 = _f64(x, state)
    assert _rel(out.num, gdn_reference(x64, None, s64).num) < TOL


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_hi_lo_split_survives_compile(dtype):
    """Inductor drops a rounding cast inside a fused kernel: `a - a.to(bf16).float()` compiles to 0, which
    on the GPU cost the first version of this scan its lo parts (2.5e-4 error instead of 1e-6). The bit-mask
    split keeps ~16 bits compiled as eager."""
    from sanawm.model.ops.gdn_chunk import _split

    torch._dynamo.reset()
    a = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    for hi, lo in (_split(a, dtype), torch.compile(lambda a: _split(a, dtype), fullgraph=True)(a)):
        assert hi.dtype == lo.dtype == dtype and lo.abs().max() > 0
        # ~16 bits relative; fp16's lo can be subnormal (below 2^-14), hence the absolute 2^-23
        assert ((hi.float() + lo.float() - a).abs() <= a.abs() * 2.0**-15 + 2.0**-23).all()


def test_chunk_scan_compiles_whole():
    """torch.compile traces it without a graph break (fullgraph), as a compiled streaming step needs, and
    the compiled scan is as close to the float64 reference as the eager one."""
    torch._dynamo.reset()
    x, state = _inputs(torch.bfloat16, T=3)
    with torch.no_grad():
        compiled = torch.compile(lambda x, s: gdn_scan_chunk(x, None, s), fullgraph=True)(x, state)
    x64, s64 = _f64(x, state)
    ref = gdn_reference(x64, None, s64)
    assert _rel(compiled.num, ref.num) < TOL and _rel(compiled.den, ref.den) < TOL
    assert _rel(compiled.state.num, ref.state.num) < TOL


def test_streaming_network_on_the_chunk_scan(monkeypatch):
    """The tiny network in bf16, streamed in chunks of 3 frames with carried state: the chunk scan against
    the PyTorch scan (fp32), within what bf16 activations allow."""
    from sanawm.model.ops import gdn_chunk

    model, args = tiny_network(6, dtype=torch.bfloat16)
    model.eval()

    calls, scan = [], gdn_chunk.gdn_scan_chunk
    monkeypatch.setattr(gdn_chunk, "gdn_scan_chunk", lambda *a: calls.append(1) or scan(*a))
    outs = {}
    for setting in ("chunk", "pytorch"):
        monkeypatch.setenv("SANAWM_GDN_KERNEL", setting)
        with torch.no_grad():
            outs[setting] = model(*args, chunks=(3, 3), kv_window=1)
    assert calls and torch.isfinite(outs["chunk"]).all()
    assert _rel(outs["chunk"], outs["pytorch"]) < 1e-2
