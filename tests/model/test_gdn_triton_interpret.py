"""The Triton GDN kernels (forward and backward) against `gdn_reference`, run on the CPU under Triton's
interpreter at a tiny size. Skips where Triton is not installed (the CPU CI); the device runs the same
comparison on the GPU in tests/gpu/test_gdn_kernel.py.

The check runs in a child process: TRITON_INTERPRET must be set before the kernels are defined, and a
process that already compiled them for a GPU must keep those."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5  # fp32 inputs and products against the float64 reference; measured ~1e-7


def _check() -> None:
    import torch

    from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_reference
    from sanawm.model.ops.gdn_triton import gdn_scan_triton

    B, H, T, S, D, Dv = 1, 2, 5, 20, 8, 12
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    for numerator_only, chunks in ((False, None), (True, (2, 2, 1))):
        xs = [r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, Dv) - 0.5, r(B, H, T, S),
              0.5 + 0.5 * r(B, H, T), r(B, H, T, S, D), r(B, H, T, S, D) / (D * S) ** 0.5]  # fmt: skip
        st = [0.1 * r(B, H, Dv, D), 0.1 * r(B, H, D)]
        if numerator_only:
            xs[5:], st[1:] = [None, None], [None]
        ref_in = [None if t is None else t.clone().requires_grad_() for t in xs + st]
        ker_in = [None if t is None else t.float().requires_grad_() for t in xs + st]
        outs = []
        for fn, leaves in ((gdn_reference, ref_in), (gdn_scan_triton, ker_in)):
            o = fn(GDNInputs(*leaves[:7]), chunks, GDNState(*leaves[7:]))
            gen = torch.Generator().manual_seed(1)
            loss = (o.num.double() * torch.randn(o.num.shape, generator=gen, dtype=torch.float64)).sum()
            loss = loss + (o.state.num.double() * torch.randn(o.state.num.shape, generator=gen)).sum()
            if o.den is not None:
                loss = loss + o.den.double().square().sum() + 3 * o.state.den.double().sum()
            loss.backward()
            outs.append(o)
        ref, ker = outs
        errors = {"num": rel(ker.num, ref.num), "state": rel(ker.state.num, ref.state.num)}
        if not numerator_only:
            errors |= {"den": rel(ker.den, ref.den), "den_state": rel(ker.state.den, ref.state.den)}
        for name, a, b in zip("q k v beta decay q_den k_den num0 den0".split(), ker_in, ref_in, strict=True):
            if a is not None:
                errors["d" + name] = rel(a.grad, b.grad)
        bad = {k: v for k, v in errors.items() if not v < TOL}
        assert not bad, f"numerator_only={numerator_only} chunks={chunks}: {bad}"
        print(numerator_only, chunks, {k: f"{v:.1e}" for k, v in errors.items()})


def test_kernels_match_reference_under_the_interpreter():
    env = dict(
        os.environ, TRITON_INTERPRET="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    proc = subprocess.run(
        [sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("{") == 2  # both cases ran


if __name__ == "__main__":
    _check()
