"""The frame-wise GDN scan of a few frames (a streamed chunk) on tensor cores, in PyTorch (no Triton).

Computes exactly what `gdn.gdn_reference` defines (see `gdn.py` for the recurrence and the layout), for
calls of a few frames: the per-frame transitions

    G_t = K̂_tᵀ diag(β_t) K̂_t (D x D),   U_t = V_tᵀ diag(β_t) K̂_t (Dv x D),   M_t = γ_t (I − G_t)

and the outputs O_t = Q̂_t (S_t + R_t)ᵀ are batched matmuls over all frames at once, and only the D x D
recurrence S_t = S_{t−1} M_t + U_t (forward, from the initial state) and R⁺_t = R⁺_{t+1} M_t + U_t
(reverse, restarting at each chunk end) walks the frames, in fp32.

Why: inside a compiled streaming step (`torch.compile` + CUDA graphs, 3 frames a call) the row kernel
(`gdn_triton_rows`) walks each frame's tokens serially and breaks the graph, and the PyTorch scan
(`gdn.gdn_parallel`) upcasts every input to fp32 and multiplies on the CUDA cores. Here the 16-bit inputs
go to the tensor cores as they are, with fp32 accumulation and fp32 results (`torch.bmm(..., out_dtype=
torch.float32)` on CUDA). Two operands are not 16-bit numbers: β·K̂ (a product) and the fp32 states. Each
enters as a pair of 16-bit parts a ≈ hi + lo (hi = a truncated, lo = (a − hi) rounded), two products
instead of one, so the products keep about 16 bits of the operand's mantissa: finer than the row
kernel's TF32 products (10 bits), coarser than fp32. Off CUDA (tests) the same products run in fp32 on
the exact 16-bit values.

`gdn_scan_chunk(x, chunks, state)` is a drop-in for `gdn_parallel(x, chunks, state)` without context
parallelism and without gradients, for bf16/fp16 inputs; `gdn.gdn_scan`'s "auto" picks it (path "chunk")
for compiled calls of at most `gdn.COMPILED_SCAN_FRAMES` frames (see `gdn.gdn_path`). Eager, the row
kernel stays faster at a chunk's size (0.63 ms against 1.29 ms at 3 frames of the 2.6 B network's head
group on an H100: these are a dozen small launches).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .gdn import GDNInputs, GDNOutput, GDNState, chunk_ends, needs_grad

HALF_DTYPES = (torch.bfloat16, torch.float16)
# torch.bmm(..., out_dtype=torch.float32) on CUDA (the aten::bmm.dtype overload; PyTorch >= 2.8)
CUDA_PRODUCTS = hasattr(torch.ops.aten.bmm, "dtype")


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b for 16-bit a, b (batched, same dtype) with fp32 accumulation and an fp32 result."""
    if a.is_cuda:
        return torch.bmm(a, b, out_dtype=torch.float32)
    return torch.bmm(a.float(), b.float())  # exact products of the 16-bit values


# fp32 bit masks keeping the leading mantissa bits a 16-bit float holds (bf16: 7 of 23, fp16: 10)
_HI_MASK = {torch.bfloat16: -(1 << 16), torch.float16: -(1 << 13)}


def _split(a: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 `a` as hi + lo in `dtype`: hi = a with its low mantissa bits cleared (a 16-bit number, so its
    cast is exact), lo = a − hi (exact in fp32) rounded. Bit masking rather than `a - a.to(dtype).float()`:
    Inductor does not emulate a rounding cast inside a fused kernel, so there lo would come out 0."""
    hi = (a.view(torch.int32) & _HI_MASK[dtype]).view(torch.float32)
    return hi.to(dtype), (a - hi).to(dtype)


def _mm_split(a: torch.Tensor, b32: torch.Tensor) -> torch.Tensor:
    """a @ b32 for 16-bit a and fp32 b32, b32 entering as its two 16-bit parts."""
    hi, lo = _split(b32, a.dtype)
    return _mm(a, hi) + _mm(a, lo)


def _mm_split_left(a32: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a32 @ b for fp32 a32 and 16-bit b, a32 entering as its two 16-bit parts."""
    hi, lo = _split(a32, b.dtype)
    return _mm(hi, b) + _mm(lo, b)


def supports(x: GDNInputs, state: GDNState | None = None) -> bool:
    """Whether this path takes these inputs: the feature tensors (q, k, v and the normaliser's) all in
    one 16-bit dtype. β, γ and the state may be any float dtype (they are read in fp32)."""
    feats = [t for t in (x.q, x.k, x.v, x.q_den, x.k_den) if t is not None]
    return feats[0].dtype in HALF_DTYPES and all(t.dtype == feats[0].dtype for t in feats)


def _transitions(k, v, beta, decay):
    """M (BH, T, D, D) and U (BH, T, R, D) in fp32 from 16-bit k (B,H,T,S,D), v (…,Dv) or None (V = 1)."""
    B, H, T, S, D = k.shape
    kb = beta.float()[..., None] * k.float()  # β·K̂ in fp32: (B,H,T,S,D)
    kb_t = kb.reshape(B * H * T, S, D).transpose(1, 2)  # (BHT, D, S)
    k2 = k.reshape(B * H * T, S, D)
    G = _mm_split_left(kb_t, k2)  # (BHT, D, D) = K̂ᵀ β K̂
    eye = torch.eye(D, device=k.device, dtype=torch.float32)
    M = decay.float().reshape(B * H * T, 1, 1) * (eye - G)
    if v is None:
        U = kb.sum(3).reshape(B * H * T, 1, D)  # Σ_s β_s K̂_s
    else:
        v_t = v.reshape(B * H * T, S, -1).transpose(1, 2)  # (BHT, Dv, S)
        U = _mm_split(v_t, kb.reshape(B * H * T, S, D))  # Vᵀ β K̂
    return M.reshape(B * H, T, D, D), U.reshape(B * H, T, -1, D)


def _states(M, U, keep, state0):
    """Per frame the forward state plus the exclusive reverse state (BH, T, R, D), and the last forward
    state (BH, R, D); keep (T,) is 0 at the last frame of each chunk. T is small: plain loops."""
    T = M.shape[1]
    fwd = []
    s = state0
    for t in range(T):
        s = U[:, t] if s is None else s @ M[:, t] + U[:, t]
        fwd.append(s)
    rev = [None] * T
    r = torch.zeros_like(U[:, 0])
    for t in reversed(range(T)):
        r = r * keep[t]  # the reverse scan restarts at each chunk end
        rev[t] = r
        r = r @ M[:, t] + U[:, t]
    return torch.stack([f + b for f, b in zip(fwd, rev, strict=True)], 1), fwd[-1]


def _outputs(q, total):
    """Q̂_t total_tᵀ: q (B,H,T,S,D) 16-bit, total (BH, T, R, D) fp32 -> (B,H,T,S,R) fp32."""
    B, H, T, S, D = q.shape
    R = total.shape[2]
    total_t = total.reshape(B * H * T, R, D).transpose(1, 2)  # (BHT, D, R)
    out = _mm_split(q.reshape(B * H * T, S, D), total_t.contiguous())
    return out.reshape(B, H, T, S, R)


def gdn_scan_chunk(
    x: GDNInputs, chunks: Sequence[int] | None = None, state: GDNState | None = None
) -> GDNOutput:
    """`gdn_parallel(x, chunks, state)` for 16-bit inputs of a few frames (no autograd, no context
    parallelism); outputs and states are fp32."""
    if needs_grad(x, state):
        raise RuntimeError(
            "gdn_scan_chunk has no backward: call it under torch.no_grad(), or use gdn.gdn_parallel"
        )
    if not supports(x, state):
        raise ValueError(
            "gdn_scan_chunk takes q, k, v (and the normaliser's q, k) in one 16-bit dtype (bf16 or fp16); "
            f"got k in {x.k.dtype}: use gdn.gdn_parallel for fp32 inputs"
        )
    B, H, T, S, D = x.k.shape
    keep = (~chunk_ends(T, chunks, x.k.device)).float()
    M, U = _transitions(x.k, x.v, x.beta, x.decay)
    num0 = None if state is None else state.num.float().reshape(B * H, -1, D)
    total, num_last = _states(M, U, keep, num0)
    num = _outputs(x.q, total)
    den = den_last = None
    if x.k_den is not None:
        Mz, Uz = _transitions(x.k_den, None, x.beta, x.decay)
        den0 = None if state is None or state.den is None else state.den.float().reshape(B * H, 1, D)
        total_z, den_last = _states(Mz, Uz, keep, den0)
        den = _outputs(x.q_den, total_z)[..., 0]
        den_last = den_last.reshape(B, H, D)
    return GDNOutput(num, den, GDNState(num_last.reshape(B, H, -1, D), den_last))


__all__ = ["gdn_scan_chunk", "supports"]
