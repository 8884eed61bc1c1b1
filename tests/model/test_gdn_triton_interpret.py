"""The Triton GDN kernels against the PyTorch scans, run on the CPU under Triton's interpreter at a tiny
size: the differentiable kernels (`gdn_triton`, forward and backward) and the inference row kernel
(`gdn_triton_rows`, forward). Skips where Triton is not installed (the CPU CI), and where the installed
Triton's interpreter cannot run the kernels (see `_interpreter_runs_loops`); the device runs the same
comparisons on the GPU in tests/gpu/test_gdn_kernel.py.

Each check runs in a child process: TRITON_INTERPRET must be set before the kernels are defined, and a
process that already compiled them for a GPU must keep those."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5  # fp32 inputs and products against the float64 reference; measured ~1e-7
SKIP = "SKIP: "


def _rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _interpreter_runs_loops() -> str | None:
    """None if this Triton's interpreter can loop up to a runtime integer argument, else why not.

    Older interpreters (Triton 3.6, for one) hold integer arguments as 1-element arrays and convert them
    with `int(array)`, which numpy >= 2.4 refuses ("only 0-dimensional arrays can be converted to Python
    scalars"); every kernel here loops over tokens or frames up to such an argument."""
    import numpy as np
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def count(out, n):
        acc = 0.0
        for _ in range(n):
            acc += 1.0
        tl.store(out, acc)

    out = torch.zeros(1)
    try:
        count[(1,)](out, 3)
    except Exception as e:  # noqa: BLE001 - the interpreter wraps whatever failed in its own error
        return (
            f"Triton {triton.__version__}'s interpreter cannot loop to a runtime bound with numpy "
            f"{np.__version__} ({e!r}); tests/gpu/test_gdn_kernel.py runs these checks on the GPU"
        )
    return None if out.item() == 3.0 else f"Triton {triton.__version__}'s interpreter miscounts a loop"


def _check_ops() -> None:
    """Outputs, final states and every input gradient against float64 `gdn_reference`: contiguous
    inputs, and the strided views the network passes (`network_layout`)."""
    import torch

    from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_reference
    from sanawm.model.ops.gdn_triton import gdn_scan_triton
    from tests.model.helpers import network_layout

    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    cases = [  # (B, H, T, S, D, Dv), numerator_only, chunks, layout
        ((1, 2, 5, 20, 8, 12), False, None, None),
        ((1, 2, 5, 20, 8, 12), True, (2, 2, 1), None),
        ((2, 3, 5, 20, 8, 12), False, (2, 2, 1), network_layout),
        ((2, 3, 5, 20, 8, 12), True, None, network_layout),
    ]
    for (B, H, T, S, D, Dv), numerator_only, chunks, layout in cases:
        xs = [r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, Dv) - 0.5, r(B, H, T, S),
              0.5 + 0.5 * r(B, H, T), r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5]  # fmt: skip
        st = [0.1 * r(B, H, Dv, D), 0.1 * r(B, H, D)]
        if numerator_only:
            xs[5:], st[1:] = [None, None], [None]
        ref_in = [None if t is None else t.clone().requires_grad_() for t in xs + st]
        ker_in = [None if t is None else t.float().requires_grad_() for t in xs + st]
        outs = []
        for fn, leaves in ((gdn_reference, ref_in), (gdn_scan_triton, ker_in)):
            x = GDNInputs(*leaves[:7])
            if layout is not None and fn is gdn_scan_triton:
                x = layout(x)
            o = fn(x, chunks, GDNState(*leaves[7:]))
            gen = torch.Generator().manual_seed(1)
            loss = (o.num.double() * torch.randn(o.num.shape, generator=gen, dtype=torch.float64)).sum()
            loss = loss + (o.state.num.double() * torch.randn(o.state.num.shape, generator=gen)).sum()
            if o.den is not None:
                loss = loss + o.den.double().square().sum() + 3 * o.state.den.double().sum()
            loss.backward()
            outs.append(o)
        ref, ker = outs
        errors = {"num": _rel(ker.num, ref.num), "state": _rel(ker.state.num, ref.state.num)}
        if not numerator_only:
            errors |= {"den": _rel(ker.den, ref.den), "den_state": _rel(ker.state.den, ref.state.den)}
        for name, a, b in zip("q k v beta decay q_den k_den num0 den0".split(), ker_in, ref_in, strict=True):
            if a is not None:
                errors["d" + name] = _rel(a.grad, b.grad)
        bad = {k: v for k, v in errors.items() if not v < TOL}
        where = f"numerator_only={numerator_only} chunks={chunks} layout={getattr(layout, '__name__', None)}"
        assert not bad, f"{where}: {bad}"
        print("CASE", where, {k: f"{v:.1e}" for k, v in errors.items()})


def _check_rows() -> None:
    """The row kernel's outputs and final states against float64 `gdn_reference` (no gradients): both
    modes, with and without the normaliser, contiguous inputs and the network's strided views."""
    import torch

    from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_reference
    from sanawm.model.ops.gdn_triton_rows import gdn_scan_rows
    from tests.model.helpers import network_layout

    g = torch.Generator().manual_seed(2)

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    cases = [  # (B, H, T, S, D, Dv), numerator_only, chunks, layout
        ((1, 2, 5, 40, 8, 12), False, None, None),
        ((2, 3, 5, 20, 8, 40), True, (2, 2, 1), network_layout),
        ((2, 3, 5, 20, 8, 12), False, (2, 2, 1), network_layout),
    ]
    for (B, H, T, S, D, Dv), numerator_only, chunks, layout in cases:
        xs = [r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, Dv) - 0.5, r(B, H, T, S),
              0.5 + 0.5 * r(B, H, T), r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5]  # fmt: skip
        st = [0.1 * r(B, H, Dv, D), 0.1 * r(B, H, D)]
        if numerator_only:
            xs[5:], st[1:] = [None, None], [None]
        ref = gdn_reference(GDNInputs(*xs[:7]), chunks, GDNState(*st))
        x = GDNInputs(*(None if t is None else t.float() for t in xs))
        state = GDNState(*(None if t is None else t.float() for t in st))
        with torch.no_grad():
            ker = gdn_scan_rows(x if layout is None else layout(x), chunks, state)
        errors = {"num": _rel(ker.num, ref.num), "state": _rel(ker.state.num, ref.state.num)}
        if not numerator_only:
            errors |= {"den": _rel(ker.den, ref.den), "den_state": _rel(ker.state.den, ref.state.den)}
        bad = {k: v for k, v in errors.items() if not v < TOL}
        where = (
            f"rows numerator_only={numerator_only} chunks={chunks} layout={getattr(layout, '__name__', None)}"
        )
        assert not bad, f"{where}: {bad}"
        print("CASE", where, {k: f"{v:.1e}" for k, v in errors.items()})


def _check_network() -> None:
    """The tiny network (fp32) with every GDN scan on the kernels against the PyTorch scan: chunk-causal
    outputs and parameter gradients, and a two-sample stream (camera expanded over the batch, as in
    tests/gpu/test_cuda.py) against the full chunk-causal clip."""
    import torch

    from sanawm.model import SanaWMTransformer, attention, get_preset
    from sanawm.model.ops.gdn import gdn_parallel, to_fp32
    from sanawm.model.ops.gdn import kernel_supports as supports
    from sanawm.model.ops.gdn_triton import gdn_scan_triton
    from tests.model.helpers import camera_inputs, randomize

    use_kernel = {"on": False}
    calls = []

    def scan(x, chunks=None, state=None, cp=None):  # `gdn.gdn_scan` set to "memory", on the CPU
        if use_kernel["on"] and cp is None and supports(x, state):
            calls.append(x.k_den is None)
            return gdn_scan_triton(x, chunks, state)
        return gdn_parallel(to_fp32(x), chunks, state, cp=cp)

    attention.gdn_scan = scan
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1)
    g = torch.Generator().manual_seed(1)
    T, grid, chunks = 7, (4, 6), (3, 2, 2)
    lat = torch.randn(2, model.cfg.in_channels, T, *grid, generator=g)
    ts = torch.rand(2, T, generator=g) * 1000
    text = torch.randn(2, 5, model.cfg.caption_channels, generator=g)
    camera, plucker = (t.expand(2, *t.shape[1:]) for t in camera_inputs(T, grid))

    results = []
    for on in (True, False):
        use_kernel["on"] = on
        model.zero_grad()
        out = model(lat[:1], ts[:1], text[:1], None, camera[:1], plucker[:1], chunks=chunks, kv_window=1)
        out.square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.detach(), grads))
    (fast, gf), (slow, gs) = results
    assert set(calls) == {False, True}, "both the main scan and the camera branch's took the kernels"
    assert _rel(fast, slow) < 1e-5, _rel(fast, slow)
    worst = max(_rel(gf[n], gs[n]) for n in gf if gs[n].norm() > 0)
    assert worst < 1e-4, worst

    with torch.no_grad():
        use_kernel["on"] = False
        full = model(lat, ts, text, None, camera, plucker, chunks=chunks, kv_window=1)
        use_kernel["on"] = True
        state, outs, start = model.init_stream_state(1), [], 0
        for size in chunks:
            sl = slice(start, start + size)
            o, state = model.stream_step(
                lat[:, :, sl], ts[:, sl], text, state, None, camera[:, sl], plucker[:, :, sl]
            )
            outs.append(o)
            start += size
    stream = _rel(torch.cat(outs, 2), full)
    assert stream < 1e-4, stream
    errors = {"out": _rel(fast, slow), "grad": worst, "stream": stream}
    print("CASE network", {k: f"{v:.1e}" for k, v in errors.items()})


def _run_child(check: str, cases: int) -> None:
    env = dict(
        os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    proc = subprocess.run(
        [sys.executable, __file__, check], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if proc.stdout.startswith(SKIP):
        pytest.skip(proc.stdout[len(SKIP) :].strip())
    assert proc.stdout.count("CASE") == cases, proc.stdout  # every case ran


def test_kernels_match_reference_under_the_interpreter():
    _run_child("ops", 4)


def test_row_kernel_matches_reference_under_the_interpreter():
    _run_child("rows", 3)


def test_network_with_kernels_matches_pytorch_scan_under_the_interpreter():
    _run_child("network", 1)


if __name__ == "__main__":
    reason = _interpreter_runs_loops()
    if reason is not None:
        print(SKIP + reason)
    else:
        {"ops": _check_ops, "rows": _check_rows, "network": _check_network}[sys.argv[1]]()
