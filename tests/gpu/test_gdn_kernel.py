"""The Triton GDN kernels against the PyTorch scan on the GPU (skips without CUDA or Triton): the
differentiable kernels (`gdn_triton`, "memory"), forward and gradients, and the inference row kernel
(`gdn_triton_rows`, "rows"), forward.

Tolerances (relative L2 against `gdn_parallel` in fp32 on the same input values):
- fp32 inputs, fp32 ("ieee") products: outputs and states 1e-5, gradients 1e-4.
- bf16 inputs: token products in tf32 (10-bit mantissa), states fp32, input gradients rounded to bf16:
  outputs and states 5e-3, gradients 1.5e-2."""

import pytest
import torch

from sanawm.model.ops import gdn, gdn_triton, gdn_triton_rows
from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_parallel, gdn_scan, to_fp32
from tests.model.helpers import network_layout, tiny_network

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not gdn_triton.AVAILABLE, reason="needs Triton"),
]


@pytest.fixture(autouse=True)
def setting_from_environment():
    """Each test picks the GDN path with SANAWM_GDN_KERNEL; no `set_gdn_kernel` choice left over."""
    gdn.set_gdn_kernel(None)


TOL = {torch.float32: (1e-5, 1e-4), torch.bfloat16: (5e-3, 1.5e-2)}
NAMES = ("q", "k", "v", "beta", "decay", "q_den", "k_den", "num0", "den0")


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


def _run(fn, x: GDNInputs, state, chunks, numerator_only, layout=None, seed=5):
    """Outputs and the gradients of a fixed random loss wrt every input of `fn`. `layout` re-lays the
    inputs out in memory after they become leaves (a copy would undo the strides)."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in x.__dict__.values()]
    st = (
        [None, None]
        if state is None
        else [t.detach().clone().requires_grad_() for t in (state.num, state.den)]
    )
    if numerator_only:
        leaves[5:], st[1] = [None, None], None
    inputs = GDNInputs(*leaves)
    out = fn(inputs if layout is None else layout(inputs), chunks, None if state is None else GDNState(*st))
    g = torch.Generator(device="cuda").manual_seed(seed)
    loss = (out.num * torch.randn(out.num.shape, generator=g, device="cuda")).sum()
    loss = loss + (out.state.num * torch.randn(out.state.num.shape, generator=g, device="cuda")).sum()
    if out.den is not None:
        loss = loss + (out.den * torch.randn(out.den.shape, generator=g, device="cuda")).sum()
        loss = loss + (out.state.den * torch.randn(out.state.den.shape, generator=g, device="cuda")).sum()
    loss.backward()
    grads = {n: t.grad for n, t in zip(NAMES, leaves + st, strict=True) if t is not None}
    return out, grads


def _reference(x, chunks, state):
    return gdn_parallel(to_fp32(x), chunks, state)


@pytest.mark.parametrize("layout", [None, network_layout], ids=["contiguous", "network-layout"])
@pytest.mark.parametrize("chunks", [None, (4, 3, 3, 1)], ids=["bidirectional", "chunk-causal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("numerator_only", [False, True], ids=["num+den", "num-only"])
def test_kernel_equals_pytorch_scan_forward_and_gradients(chunks, dtype, with_state, numerator_only, layout):
    """`network-layout` hands the kernel the strided views the network passes (`network_layout`); the
    network's (B, T, H) decay viewed as (B, H, T) once made the kernel read frames of the wrong head."""
    torch.backends.cuda.matmul.allow_tf32 = False
    tol_out, tol_grad = TOL[dtype]
    for seed, (B, H, S, D, Dv) in enumerate([(2, 3, 37, 112, 112), (1, 2, 64, 24, 40)]):
        x, state = _inputs(B, H, 11, S, D, Dv, dtype, seed)
        state = state if with_state else None
        ref, ref_grads = _run(_reference, x, state, chunks, numerator_only)
        out, grads = _run(gdn_triton.gdn_scan_triton, x, state, chunks, numerator_only, layout)
        checks = {"num": _rel(out.num, ref.num), "state": _rel(out.state.num, ref.state.num)}
        if not numerator_only:
            checks |= {"den": _rel(out.den, ref.den), "den_state": _rel(out.state.den, ref.state.den)}
        bad = {k: v for k, v in checks.items() if not v < tol_out}
        assert not bad, f"outputs: {bad}"
        assert grads.keys() == ref_grads.keys()
        gbad = {n: _rel(grads[n], ref_grads[n]) for n in grads if not _rel(grads[n], ref_grads[n]) < tol_grad}
        assert not gbad, f"gradients: {gbad}"


@pytest.mark.parametrize("layout", [None, network_layout], ids=["contiguous", "network-layout"])
@pytest.mark.parametrize("chunks", [None, (4, 3, 3, 1)], ids=["bidirectional", "chunk-causal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("with_state", [False, True])
def test_row_kernel_equals_pytorch_scan(chunks, dtype, with_state, layout):
    """The inference kernel, forward only (it has no backward)."""
    tol = TOL[dtype][0]
    for seed, (B, H, S, D, Dv) in enumerate([(2, 3, 37, 112, 112), (1, 2, 64, 24, 40)]):
        x, state = _inputs(B, H, 11, S, D, Dv, dtype, seed)
        state = state if with_state else None
        with torch.no_grad():
            ref = _reference(x, chunks, state)
            out = gdn_triton_rows.gdn_scan_rows(x if layout is None else layout(x), chunks, state)
        assert torch.isfinite(out.num).all() and torch.isfinite(out.den).all()
        checks = {
            "num": _rel(out.num, ref.num),
            "den": _rel(out.den, ref.den),
            "state": _rel(out.state.num, ref.state.num),
            "den_state": _rel(out.state.den, ref.state.den),
        }
        bad = {k: v for k, v in checks.items() if not v < tol}
        assert not bad, f"outputs: {bad}"


def test_row_kernel_numerator_only_and_refuses_gradients():
    x, state = _inputs(1, 2, 9, 40, 32, 32, torch.float32, 7)
    x = GDNInputs(x.q, x.k, x.v, x.beta, x.decay)
    with torch.no_grad():
        ref = gdn_parallel(x, (4, 5), GDNState(state.num))
        out = gdn_triton_rows.gdn_scan_rows(x, (4, 5), GDNState(state.num))
    assert out.den is None and out.state.den is None
    assert _rel(out.num, ref.num) < 1e-5 and _rel(out.state.num, ref.state.num) < 1e-5
    xg = GDNInputs(x.q.clone().requires_grad_(), x.k, x.v, x.beta, x.decay)
    with pytest.raises(RuntimeError, match="no backward"):
        gdn_triton_rows.gdn_scan_rows(xg, (4, 5), None)


def _spy(monkeypatch):
    calls = []
    for module, name in ((gdn_triton, "gdn_scan_triton"), (gdn_triton_rows, "gdn_scan_rows")):
        real = getattr(module, name)
        tag = "memory" if module is gdn_triton else "rows"
        monkeypatch.setattr(module, name, lambda *a, _r=real, _t=tag, **k: calls.append(_t) or _r(*a, **k))
    return calls


def test_dispatch_on_cuda(monkeypatch):
    """The defaults on real CUDA tensors (the full table is tests/model/test_gdn_dispatch.py, on the CPU):
    bf16 inference on the row kernel, fp32 inference and training on the PyTorch scan; "memory" takes
    the differentiable kernels with gradients."""
    monkeypatch.delenv("SANAWM_GDN_KERNEL", raising=False)
    calls = _spy(monkeypatch)
    x32, state = _inputs(1, 2, 5, 16, 16, 16, torch.float32, 3)
    xbf, _ = _inputs(1, 2, 5, 16, 16, 16, torch.bfloat16, 3)
    with torch.no_grad():
        gdn_scan(xbf, None, state)
        gdn_scan(x32, None, state)
    assert calls == ["rows"]
    xg = GDNInputs(xbf.q.clone().requires_grad_(), xbf.k, xbf.v, xbf.beta, xbf.decay, xbf.q_den, xbf.k_den)
    assert gdn_scan(xg, None, state).num.requires_grad and calls == ["rows"]
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "memory")
    assert gdn_scan(xg, None, state).num.requires_grad and calls == ["rows", "memory"]
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "0")
    with torch.no_grad():
        gdn_scan(xbf, None, state)
    x64 = _map(x32, lambda t: t.double())  # float64 is no kernel's dtype: the PyTorch scan
    for setting in ("auto", "rows", "memory"):
        monkeypatch.setenv("SANAWM_GDN_KERNEL", setting)
        gdn_scan(x64, None, None)
    assert calls == ["rows", "memory"]


def test_compiled_streaming_chunk_stays_in_the_graph(monkeypatch):
    """Under torch.compile, "auto" runs a chunk of a few frames inside the graph (the chunk scan for
    these bf16 inputs): fullgraph compiles (the row kernel, a compiler.disable'd call, would break it),
    and the result equals the eager row kernel's within the bf16 tolerance."""
    monkeypatch.delenv("SANAWM_GDN_KERNEL", raising=False)
    torch._dynamo.reset()
    x, state = _inputs(1, 4, 3, 64, 32, 32, torch.bfloat16, 11)
    with torch.no_grad():  # chunks=None: a streaming step's call (its state carries the history)
        eager = gdn_scan(x, None, state)
        compiled = torch.compile(lambda x, s: gdn_scan(x, None, s), fullgraph=True)(x, state)
    tol = TOL[torch.bfloat16][0]
    assert _rel(compiled.num, eager.num) < tol and _rel(compiled.den, eager.den) < tol
    assert _rel(compiled.state.num, eager.state.num) < tol


def _tiny_network():
    return tiny_network(7, "cuda")


def test_network_with_row_kernel_equals_network_without(monkeypatch):
    """The tiny network in fp32 (TF32 off), no gradients: outputs with the row kernel and without."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model, args = _tiny_network()
    calls = _spy(monkeypatch)
    with torch.no_grad():
        for chunks in (None, (3, 2, 2)):
            monkeypatch.setenv("SANAWM_GDN_KERNEL", "rows")
            fast = model(*args, chunks=chunks, kv_window=1)
            monkeypatch.setenv("SANAWM_GDN_KERNEL", "pytorch")
            slow = model(*args, chunks=chunks, kv_window=1)
            assert _rel(fast, slow) < 1e-5
    assert calls and set(calls) == {"rows"}


def test_network_with_kernel_equals_network_without(monkeypatch):
    """The tiny network in fp32 (TF32 off): outputs and parameter gradients with the differentiable
    kernels ("memory") and with the PyTorch scan."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model, args = _tiny_network()
    calls = _spy(monkeypatch)
    for chunks in (None, (3, 2, 2)):
        results = []
        for setting in ("memory", "pytorch"):
            monkeypatch.setenv("SANAWM_GDN_KERNEL", setting)
            model.zero_grad()
            out = model(*args, chunks=chunks, kv_window=1)
            out.square().mean().backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            results.append((out.detach(), grads))
        (fast, gf), (slow, gs) = results
        assert _rel(fast, slow) < 1e-5
        assert gf.keys() == gs.keys()
        worst = max(_rel(gf[n], gs[n]) for n in gf if gs[n].norm() > 0)
        assert worst < 1e-4, worst
    assert calls and set(calls) == {"memory"}


@pytest.mark.parametrize("chunks", [None, (2, 1)])
def test_chunk_scan_on_tensor_cores_equals_the_pytorch_scan(chunks):
    """`gdn_chunk` on CUDA (bf16 tensor-core products with fp32 results, the fp32 operands as 16-bit
    hi + lo pairs) against the PyTorch scan in fp32 of the same bf16 inputs, at a streamed chunk's size
    of the 2.6 B network's head group (3 frames, 880 tokens, D = 112), with and without the fullgraph
    compile a streaming step uses. The pair products keep ~16 bits: within 1e-4 (the row kernel's TF32
    products are held to 5e-3)."""
    from sanawm.model.ops.gdn_chunk import gdn_scan_chunk

    torch._dynamo.reset()
    x, state = _inputs(1, 20, 3, 880, 112, 112, torch.bfloat16, 21)
    with torch.no_grad():
        ref = gdn_parallel(to_fp32(x), chunks, state)
        eager = gdn_scan_chunk(x, chunks, state)
        compiled = torch.compile(lambda x, s: gdn_scan_chunk(x, chunks, s), fullgraph=True)(x, state)
    for out in (eager, compiled):
        assert _rel(out.num, ref.num) < 1e-4 and _rel(out.den, ref.den) < 1e-4
        assert _rel(out.state.num, ref.state.num) < 1e-4 and _rel(out.state.den, ref.state.den) < 1e-4
