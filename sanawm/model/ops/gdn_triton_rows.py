"""The frame-wise GDN scan as one Triton kernel per direction, row by row (inference: no autograd).

Computes exactly what `gdn.gdn_reference` defines (see `gdn.py` for the recurrence and the layout):
a forward inclusive scan with an initial state and the final state out, then a reverse exclusive scan
that restarts at every chunk end, added into the same output; the normaliser path is the same kernel
with V = 1. Each program owns a block of BE rows of one head's Dv x D state, in fp32 registers, and
walks the frames in order: per frame, one pass over the tokens builds the update
S ← γS + Σ_s β_s (v_s − γ S k_s) k_sᵀ (all tokens read the state from before the frame), and a second
pass writes the frame's outputs Q̂ Sᵀ. Rows of the state never interact, so the Dv rows split freely
across programs. Inputs may be bf16 or fp32 (read once, upcast in registers); outputs are fp32.

`gdn_scan_rows(x, chunks, state)` is a drop-in for `gdn_parallel(x, chunks, state)` without context
parallelism and without gradients; `gdn.gdn_scan` picks it on CUDA for 16-bit inputs when nothing needs
gradients (see `gdn.gdn_path`). Measured on an H100 at the 60 s 720p size (docs/benchmarks.md): bf16
inputs 1.4x faster than the PyTorch scan, fp32 inputs 7x slower. The differentiable kernels are in
`gdn_triton.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU CI has no Triton; gdn.gdn_scan then never calls this
    triton = None

from .gdn import GDNInputs, GDNOutput, GDNState, chunk_ends, needs_grad

AVAILABLE = triton is not None

if AVAILABLE:

    @triton.jit
    def _write_frame(
        Q, O, st, frame, S, D, DV, offs_s, offs_d, offs_e, mask_d, mask_e,
        ACCUMULATE: tl.constexpr, BS: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        """One frame's outputs for this program's state rows: O[frame] (+)= Q̂[frame] stᵀ, BS tokens a pass."""
        for s0 in range(0, S, BS):
            rows = s0 + offs_s
            mask_s = rows < S
            q = tl.load(
                Q + frame * S * D + rows[:, None] * D + offs_d[None, :],
                mask=mask_s[:, None] & mask_d[None, :],
                other=0.0,
            ).to(tl.float32)
            out = tl.dot(q, tl.trans(st), input_precision=PRECISION)
            o_ptrs = O + frame * S * DV + rows[:, None] * DV + offs_e[None, :]
            o_mask = mask_s[:, None] & mask_e[None, :]
            if ACCUMULATE:
                out += tl.load(o_ptrs, mask=o_mask, other=0.0)
            tl.store(o_ptrs, out, mask=o_mask)

    @triton.jit
    def _gdn_scan_kernel(
        Q,
        K,
        V,
        BETA,
        DECAY,
        ENDS,
        S0,
        O,
        SF,
        T,
        S,
        D,
        DV,
        REVERSE: tl.constexpr,
        HAS_S0: tl.constexpr,
        ACCUMULATE: tl.constexpr,
        V_IS_ONE: tl.constexpr,
        BS: tl.constexpr,
        BD: tl.constexpr,
        BE: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        bh = tl.program_id(0)
        e0 = tl.program_id(1) * BE
        offs_d = tl.arange(0, BD)
        offs_e = e0 + tl.arange(0, BE)
        offs_s = tl.arange(0, BS)
        mask_d = offs_d < D
        mask_e = offs_e < DV
        state_ptrs = bh * DV * D + offs_e[:, None] * D + offs_d[None, :]
        state_mask = mask_e[:, None] & mask_d[None, :]
        if HAS_S0:
            st = tl.load(S0 + state_ptrs, mask=state_mask, other=0.0).to(tl.float32)
        else:
            st = tl.zeros((BE, BD), dtype=tl.float32)
        for i in range(T):
            if REVERSE:
                t = T - 1 - i
                end = tl.load(ENDS + t).to(tl.float32)
                st = st * (1.0 - end)  # the reverse scan restarts after each chunk's last frame
            else:
                t = i
            frame = (bh * T + t).to(tl.int64)
            if REVERSE:  # exclusive: frame t reads frames t+1 .. end of its chunk, then joins the state
                _write_frame(Q, O, st, frame, S, D, DV, offs_s, offs_d, offs_e, mask_d, mask_e,
                             ACCUMULATE, BS, PRECISION)  # fmt: skip
            gamma = tl.load(DECAY + bh * T + t).to(tl.float32)
            decayed = st * gamma
            acc = decayed
            for s0 in range(0, S, BS):
                rows = s0 + offs_s
                mask_s = rows < S
                k = tl.load(
                    K + frame * S * D + rows[:, None] * D + offs_d[None, :],
                    mask=mask_s[:, None] & mask_d[None, :],
                    other=0.0,
                ).to(tl.float32)
                beta = tl.load(BETA + frame * S + rows, mask=mask_s, other=0.0).to(tl.float32)
                if V_IS_ONE:  # the normaliser: target 1 in its single row
                    v = tl.where(mask_s[None, :] & (offs_e[:, None] == 0), 1.0, 0.0)
                else:
                    v = tl.load(
                        V + frame * S * DV + rows[None, :] * DV + offs_e[:, None],
                        mask=mask_s[None, :] & mask_e[:, None],
                        other=0.0,
                    ).to(tl.float32)
                pred = tl.dot(decayed, tl.trans(k), input_precision=PRECISION)  # (BE, BS)
                err = (v - pred) * beta[None, :]
                acc += tl.dot(err, k, input_precision=PRECISION)
            st = acc
            if not REVERSE:  # inclusive: frame t reads the state after its own update
                _write_frame(Q, O, st, frame, S, D, DV, offs_s, offs_d, offs_e, mask_d, mask_e,
                             ACCUMULATE, BS, PRECISION)  # fmt: skip
        if not REVERSE:
            tl.store(SF + state_ptrs, st, mask=state_mask)


def _scan(q, k, v, beta, decay, ends, state0, dv: int, precision: str):
    """Forward + reverse scans of one path; v=None is the normaliser (V = 1, dv = 1)."""
    B, H, T, S, D = k.shape
    q, k, beta, decay = (t.contiguous() for t in (q, k, beta, decay))
    v = k if v is None else v.contiguous()  # unused pointer for the normaliser
    out = torch.empty(B, H, T, S, dv, device=k.device, dtype=torch.float32)
    final = torch.empty(B, H, dv, D, device=k.device, dtype=torch.float32)
    s0 = final if state0 is None else state0.to(torch.float32).contiguous()
    BD = max(16, triton.next_power_of_2(D))
    BE = 16 if dv <= 16 else 32
    BS = 32
    grid = (B * H, triton.cdiv(dv, BE))
    common = dict(BS=BS, BD=BD, BE=BE, PRECISION=precision, V_IS_ONE=v is k, num_warps=4)
    _gdn_scan_kernel[grid](
        q, k, v, beta, decay, ends, s0, out, final, T, S, D, dv,
        REVERSE=False, HAS_S0=state0 is not None, ACCUMULATE=False, **common,
    )  # fmt: skip
    _gdn_scan_kernel[grid](
        q, k, v, beta, decay, ends, s0, out, final, T, S, D, dv,
        REVERSE=True, HAS_S0=False, ACCUMULATE=True, **common,
    )  # fmt: skip
    return out, final


@torch.compiler.disable
def gdn_scan_rows(
    x: GDNInputs,
    chunks: Sequence[int] | None = None,
    state: GDNState | None = None,
    precision: str | None = None,
) -> GDNOutput:
    """`gdn_parallel(x, chunks, state)` in two Triton launches per path (no autograd, no context
    parallelism). precision of the products: 'ieee' (fp32) or 'tf32' (tensor cores, 10-bit mantissa);
    None picks tf32 for bf16/fp16 inputs (finer than their 7/10 bits) and ieee for fp32 inputs.
    Outputs and states are fp32 and carry no gradient."""
    if not AVAILABLE:
        raise RuntimeError("the Triton GDN kernel needs the triton package (CUDA builds of torch ship it)")
    if needs_grad(x, state):
        raise RuntimeError(
            "gdn_scan_rows has no backward: call it under torch.no_grad(), or use gdn_triton.gdn_scan_triton "
            "(differentiable) or gdn.gdn_parallel"
        )
    if precision is None:
        precision = "ieee" if x.k.dtype in (torch.float32, torch.float64) else "tf32"
    T = x.num_frames
    ends = chunk_ends(T, chunks, x.k.device).to(dtype=torch.int8)
    dv = x.v.shape[-1]
    num0 = None if state is None else state.num
    num, num_last = _scan(x.q, x.k, x.v, x.beta, x.decay, ends, num0, dv, precision)
    den = den_last = None
    if x.k_den is not None:
        den0 = None if state is None or state.den is None else state.den[:, :, None, :]
        den, den_last = _scan(x.q_den, x.k_den, None, x.beta, x.decay, ends, den0, 1, precision)
        den, den_last = den[..., 0], den_last[:, :, 0]
    return GDNOutput(num, den, GDNState(num_last, den_last))


__all__ = ["AVAILABLE", "gdn_scan_rows"]
