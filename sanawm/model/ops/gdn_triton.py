"""The frame-wise GDN scan on Triton kernels, forward and backward (a `torch.autograd.Function`).

Computes exactly `gdn.gdn_reference` (see `gdn.py` for the recurrence and the frame layout), in the
form that puts the work in tensor-core products over a frame's tokens and keeps the sequential part to
a walk over frames of small D x D states. Per path (numerator: V; normaliser: V = 1, E = 1):

    A_t = K̂ᵀ diag β K̂,  U_t = Vᵀ diag β K̂                    frame-parallel   (frame_products)
    M_t = γ_t (I − A_t)                                       tiny, in PyTorch
    F_t = F_{t−1} M_t + U_t      (F_{−1} = initial state)     forward walk     (state_scan)
    G_t = keep_t G_{t+1} M_t + U_t,  R_t = keep_t G_{t+1}    reverse walk, exclusive, restarts at chunk ends
    O_t = Q̂_t (F_t + R_t)ᵀ                                   frame-parallel   (row_products)

Backward (recomputing A, U, F, R instead of saving them; W_t = F_t + R_t, dW_t = dO_tᵀ Q̂_t):

    dQ̂_t = dO_t W_t
    λ_t = dW_t + λ_{t+1} M_{t+1}ᵀ  (λ_{T−1} also gets d final state),  d initial = λ_0 M_0ᵀ
    μ_{t+1} = keep_t (dW_t + μ_t M_tᵀ),  μ_0 = 0
    dU_t = λ_t + μ_t,  dM_t = F_{t−1}ᵀ λ_t + R_tᵀ μ_t,  dγ_t = ⟨dM_t, I − A_t⟩,  dA_t = −γ_t dM_t
    dK̂, dV, dβ from dA_t, dU_t                                frame-parallel   (key_grads)

Inputs may be bf16, fp16 or fp32 in any strides with unit channel stride (the network's head views are
read in place, no copies or casts); outputs and gradients of the states are fp32, input gradients come
back in the inputs' dtypes. No context parallelism: `gdn.gdn_scan` takes `gdn_parallel` for that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

try:
    import triton

    from . import gdn_triton_kernels as kernels
except ImportError:  # pragma: no cover - the CPU CI has no Triton; gdn.gdn_scan then never calls this
    triton = None

from .gdn import GDNInputs, GDNOutput, GDNState, chunk_ends

AVAILABLE = triton is not None


def _pow2(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides4(t: torch.Tensor):
    """(b, h, t, s) strides of a (B, H, T, S[, E]) tensor."""
    return tuple(t.stride()[:4])


def _frame_products(x, y, w, E: int, precision: str) -> torch.Tensor:
    """(B, H, T, E, D) fp32: per frame xᵀ diag(w) y. x (B,H,T,S,E) or None (= ones, E = 1); w (B,H,T,S)."""
    B, H, T, S, D = y.shape
    out = torch.empty(B, H, T, E, D, device=y.device, dtype=torch.float32)
    xs = (0, 0, 0, 0) if x is None else _strides4(x)
    ws = (0, 0, 0, 0) if w is None else _strides4(w)
    BE, BD = _pow2(E), _pow2(D)
    kernels.frame_products[(B * H * T,)](
        y if x is None else x, y, y if w is None else w, out,
        H, T, S, E, D, *xs, *_strides4(y), *ws,
        X_ONES=x is None, HAS_W=w is not None,
        BS=32, BE=BE, BD=BD, PRECISION=precision, num_warps=8 if BE * BD >= 128 * 64 else 4,
    )  # fmt: skip
    return out


def _row_products(x, z, transpose: bool, precision: str) -> torch.Tensor:
    """(B, H, T, S, F) fp32: per frame x (S x E) @ z, z (B,H,T,F,E) read transposed, or (B,H,T,E,F)."""
    B, H, T, S, E = x.shape
    z = z.contiguous()
    F = z.shape[-2] if transpose else z.shape[-1]
    sze, szf = (1, E) if transpose else (F, 1)
    out = torch.empty(B, H, T, S, F, device=x.device, dtype=torch.float32)
    BS = 64
    kernels.row_products[(B * H * T, triton.cdiv(S, BS))](
        x, z, out, H, T, S, E, F, *_strides4(x), E * F, sze, szf,
        BS=BS, BE=_pow2(E), BF=_pow2(F), PRECISION=precision, num_warps=4,
    )  # fmt: skip
    return out


def _scan(N, Bm, ends, x0, *, reverse, transpose=False, pre_keep=False, store_pre=False, add_first=False,
          post_keep=False):  # fmt: skip
    """One walk of `kernels.state_scan` over (B, H, T, R, D) updates Bm with transitions N (B,H,T,D,D).
    Returns the stored per-frame states (B, H, T, R, D) and the state after the walk (B, H, R, D)."""
    B, H, T, R, D = Bm.shape
    N, Bm = N.contiguous(), Bm.contiguous()  # the kernel steps through them frame by frame in (B, H, T) order
    out = torch.empty_like(Bm)
    final = torch.empty(B, H, R, D, device=Bm.device, dtype=torch.float32)
    x0c = final if x0 is None else x0.to(torch.float32).contiguous()
    snr, snc = (1, D) if transpose else (D, 1)
    BR = 16 if R <= 16 else 32
    kernels.state_scan[(B * H, triton.cdiv(R, BR))](
        N, Bm, ends, x0c, out, final, T, R, D, snr, snc,
        REVERSE=reverse, HAS_X0=x0 is not None, PRE_KEEP=pre_keep, STORE_PRE=store_pre,
        ADD_FIRST=add_first, POST_KEEP=post_keep, STORE_POST=not store_pre,
        BR=BR, BD=_pow2(D), num_warps=8,
    )  # fmt: skip
    return out, final


def _precision(t: torch.Tensor) -> str:
    return "ieee" if t.dtype == torch.float32 else "tf32"


def _transitions(k, v, beta, decay, E, precision):
    """A (B,H,T,D,D), M = γ(I − A), U (B,H,T,E,D); all fp32."""
    A = _frame_products(k, k, beta, k.shape[-1], precision)
    U = _frame_products(v, k, beta, E, precision)
    eye = torch.eye(k.shape[-1], device=k.device, dtype=torch.float32)
    # contiguous: the product takes decay's memory order, and the network's decay is a (B, T, H) buffer
    # viewed as (B, H, T), so M would otherwise come out with heads and frames swapped in memory
    M = (decay.float()[..., None, None] * (eye - A)).contiguous()
    return A, M, U


def _path_forward(q, k, v, beta, decay, ends, s0, E, precision):
    """One path's forward. Returns output (B,H,T,S,E), final state (B,H,E,D) and the walk's states."""
    A, M, U = _transitions(k, v, beta, decay, E, precision)
    F, final = _scan(M, U, ends, s0, reverse=False)
    Rv, _ = _scan(M, U, ends, None, reverse=True, pre_keep=True, store_pre=True)
    out = _row_products(q, F + Rv, transpose=True, precision=precision)
    return out, final, (A, M, F, Rv)


def _path_backward(q, k, v, beta, decay, ends, s0, dout, dfinal, E, precision):
    """Gradients of one path: dq, dk, dv (None for V = 1), dβ, dγ, d initial state (fp32)."""
    A, M, F, Rv = _path_forward(q, k, v, beta, decay, ends, s0, E, precision)[2]
    dout = _unit_last(dout)
    dq = _row_products(dout, F + Rv, transpose=False, precision=precision)
    dW = _frame_products(dout, q, None, E, precision)
    lam, ds0 = _scan(M, dW, ends, dfinal, reverse=True, transpose=True, add_first=True)
    mu, _ = _scan(M, dW, ends, None, reverse=False, transpose=True, store_pre=True, post_keep=True)
    first = torch.zeros_like(F[:, :, :1]) if s0 is None else s0.float()[:, :, None]
    f_prev = torch.cat([first, F[:, :, :-1]], 2)
    dM = f_prev.transpose(-1, -2) @ lam + Rv.transpose(-1, -2) @ mu
    eye = torch.eye(A.shape[-1], device=A.device, dtype=torch.float32)
    ddecay = (dM * (eye - A)).sum((-1, -2))
    dA = (-decay.float()[..., None, None] * dM).contiguous()
    dU = (lam + mu).contiguous()
    B, H, T, S, D = k.shape
    dk = torch.empty(B, H, T, S, D, device=k.device, dtype=torch.float32)
    dv = None if v is None else torch.empty(B, H, T, S, E, device=k.device, dtype=torch.float32)
    dbeta = torch.empty(B, H, T, S, device=k.device, dtype=torch.float32)
    BS = 32
    kernels.key_grads[(B * H * T, triton.cdiv(S, BS))](
        k, k if v is None else v, beta, dA, dU, dk, dk if dv is None else dv, dbeta,
        H, T, S, D, E, *_strides4(k), *((0, 0, 0, 0) if v is None else _strides4(v)), *_strides4(beta),
        V_ONES=v is None, BS=BS, BD=_pow2(D), BE=_pow2(E), PRECISION=precision, num_warps=8,
    )  # fmt: skip
    return dq, dk, dv, dbeta, ddecay, ds0


class _GDNFunction(torch.autograd.Function):
    """(q, k, v, beta, decay, q_den, k_den, num0, den0, ends) -> (num, den, num_last, den_last)."""

    @staticmethod
    def forward(ctx, q, k, v, beta, decay, q_den, k_den, num0, den0, ends):
        precision = _precision(k)
        num, num_last, _ = _path_forward(q, k, v, beta, decay, ends, num0, v.shape[-1], precision)
        den = den_last = None
        if k_den is not None:
            d0 = None if den0 is None else den0[:, :, None, :]
            den, den_last, _ = _path_forward(q_den, k_den, None, beta, decay, ends, d0, 1, precision)
            den, den_last = den[..., 0], den_last[:, :, 0]
        ctx.save_for_backward(q, k, v, beta, decay, q_den, k_den, num0, den0, ends)
        ctx.precision = precision
        return num, den, num_last, den_last

    @staticmethod
    def backward(ctx, dnum, dden, dnum_last, dden_last):
        q, k, v, beta, decay, q_den, k_den, num0, den0, ends = ctx.saved_tensors
        p = ctx.precision
        if dnum is None:
            dnum = q.new_zeros(*q.shape[:-1], v.shape[-1], dtype=torch.float32)
        dq, dk, dv, dbeta, ddecay, dnum0 = _path_backward(
            q, k, v, beta, decay, ends, num0, dnum, dnum_last, v.shape[-1], p
        )
        dq_den = dk_den = dden0 = None
        if k_den is not None and (dden is not None or dden_last is not None):
            d0 = None if den0 is None else den0[:, :, None, :]
            dd = torch.zeros_like(q_den[..., 0], dtype=torch.float32) if dden is None else dden
            dl = None if dden_last is None else dden_last[:, :, None, :]
            dq_den, dk_den, _, dbeta_d, ddecay_d, dden0 = _path_backward(
                q_den, k_den, None, beta, decay, ends, d0, dd[..., None], dl, 1, p
            )
            dbeta, ddecay, dden0 = dbeta + dbeta_d, ddecay + ddecay_d, dden0[:, :, 0]
        grads = (dq, dk, dv, dbeta, ddecay, dq_den, dk_den, dnum0, dden0)
        inputs = (q, k, v, beta, decay, q_den, k_den, num0, den0)
        out = [None if g is None or x is None else g.to(x.dtype) for g, x in zip(grads, inputs, strict=True)]
        return (*out, None)


@torch.compiler.disable
def gdn_scan_triton(
    x: GDNInputs, chunks: Sequence[int] | None = None, state: GDNState | None = None
) -> GDNOutput:
    """`gdn_parallel(x, chunks, state)` on the Triton kernels, differentiable (no context parallelism).
    Token products run in tf32 for 16-bit inputs and in fp32 for fp32 inputs; states stay fp32."""
    if not AVAILABLE:
        raise RuntimeError("the Triton GDN kernels need the triton package (CUDA builds of torch ship it)")
    ends = chunk_ends(x.num_frames, chunks, x.k.device).to(dtype=torch.int8)
    q, k, v, qd, kd = (None if t is None else _unit_last(t) for t in (x.q, x.k, x.v, x.q_den, x.k_den))
    num0 = None if state is None else state.num
    den0 = None if state is None or x.k_den is None else state.den
    num, den, num_last, den_last = _GDNFunction.apply(q, k, v, x.beta, x.decay, qd, kd, num0, den0, ends)
    return GDNOutput(num, den, GDNState(num_last, den_last))


__all__ = ["AVAILABLE", "gdn_scan_triton"]
