"""Triton kernels of the frame-wise GDN: four small, generic pieces (orchestrated in `gdn_triton.py`).

Per frame t of one head (K̂, V, Q̂: S x D / S x E token matrices of the frame, β: S gates):

- `frame_products`  C_t = X_tᵀ diag(w_t) Y_t            (E x D; a reduction over the frame's S tokens)
                    A_t = K̂ᵀ diag β K̂, U_t = Vᵀ diag β K̂, and in the backward dW_t = dO_tᵀ Q̂_t.
- `row_products`    O_t = X_t Z_t                        (S x F; Z_t a small fp32 matrix, any strides)
                    O_t = Q̂_t W_tᵀ, and in the backward dQ̂_t = dO_t W_t.
- `state_scan`      the sequential walk over frames of an R x D state, X ← X N_t + B_t, with the
                    chunk-end resets of the reverse scan (`keep`), in the four orders the forward and
                    backward need (see `state_scan`'s flags).
- `key_grads`       dK̂, dV, dβ of a frame from dA_t and dU_t.

Big operands (q, k, v, β, dO) are read with their own strides and dtype (bf16/fp16/fp32) and upcast in
registers; small per-frame matrices and all outputs are fp32. `PRECISION` is the tl.dot input
precision of the token products: "tf32" for 16-bit inputs, "ieee" for fp32 ones; the scans always run
in "ieee" (they are a small part of the work and carry the state across all frames).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def frame_products(
    X, Y, W, C,
    H, T, S, E, D,
    sxb, sxh, sxt, sxs,
    syb, syh, syt, sys,
    swb, swh, swt, sws,
    X_ONES: tl.constexpr, HAS_W: tl.constexpr,
    BS: tl.constexpr, BE: tl.constexpr, BD: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """C[frame] (E x D, fp32, contiguous per frame) = X[frame]ᵀ diag(W[frame]) Y[frame]; X_ONES: X = 1."""
    pid = tl.program_id(0)
    b = (pid // (H * T)).to(tl.int64)
    h = ((pid // T) % H).to(tl.int64)
    t = (pid % T).to(tl.int64)
    offs_s = tl.arange(0, BS)
    offs_e = tl.arange(0, BE)
    offs_d = tl.arange(0, BD)
    mask_e = offs_e < E
    mask_d = offs_d < D
    x_base = X + b * sxb + h * sxh + t * sxt
    y_base = Y + b * syb + h * syh + t * syt
    w_base = W + b * swb + h * swh + t * swt
    acc = tl.zeros((BE, BD), dtype=tl.float32)
    for s0 in range(0, S, BS):
        rows = s0 + offs_s
        mask_s = rows < S
        y = tl.load(
            y_base + rows[:, None] * sys + offs_d[None, :], mask=mask_s[:, None] & mask_d[None, :], other=0.0
        ).to(tl.float32)
        if HAS_W:
            w = tl.load(w_base + rows * sws, mask=mask_s, other=0.0).to(tl.float32)
            y = y * w[:, None]
        if X_ONES:
            x = tl.where(mask_s[:, None] & (offs_e[None, :] == 0), 1.0, 0.0)
        else:
            x = tl.load(
                x_base + rows[:, None] * sxs + offs_e[None, :],
                mask=mask_s[:, None] & mask_e[None, :],
                other=0.0,
            ).to(tl.float32)
        acc += tl.dot(tl.trans(x), y, input_precision=PRECISION)
    c_ptrs = C + pid.to(tl.int64) * E * D + offs_e[:, None] * D + offs_d[None, :]
    tl.store(c_ptrs, acc, mask=mask_e[:, None] & mask_d[None, :])


@triton.jit
def row_products(
    X, Z, O,
    H, T, S, E, F,
    sxb, sxh, sxt, sxs,
    szt, sze, szf,
    BS: tl.constexpr, BE: tl.constexpr, BF: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """O[frame] (S x F, fp32, contiguous) = X[frame] (S x E) @ Z[frame] (E x F, fp32 at Z + frame*szt)."""
    pid = tl.program_id(0)
    s0 = tl.program_id(1) * BS
    b = (pid // (H * T)).to(tl.int64)
    h = ((pid // T) % H).to(tl.int64)
    t = (pid % T).to(tl.int64)
    rows = s0 + tl.arange(0, BS)
    offs_e = tl.arange(0, BE)
    offs_f = tl.arange(0, BF)
    mask_s = rows < S
    mask_e = offs_e < E
    mask_f = offs_f < F
    x = tl.load(
        X + b * sxb + h * sxh + t * sxt + rows[:, None] * sxs + offs_e[None, :],
        mask=mask_s[:, None] & mask_e[None, :],
        other=0.0,
    ).to(tl.float32)
    z = tl.load(
        Z + pid.to(tl.int64) * szt + offs_e[:, None] * sze + offs_f[None, :] * szf,
        mask=mask_e[:, None] & mask_f[None, :],
        other=0.0,
    )
    out = tl.dot(x, z, input_precision=PRECISION)
    o_ptrs = O + pid.to(tl.int64) * S * F + rows[:, None] * F + offs_f[None, :]
    tl.store(o_ptrs, out, mask=mask_s[:, None] & mask_f[None, :])


@triton.jit
def state_scan(
    N, Bm, ENDS, X0, OUT, XF,
    T, R, D, snr, snc,
    REVERSE: tl.constexpr, HAS_X0: tl.constexpr, PRE_KEEP: tl.constexpr, STORE_PRE: tl.constexpr,
    ADD_FIRST: tl.constexpr, POST_KEEP: tl.constexpr, STORE_POST: tl.constexpr,
    BR: tl.constexpr, BD: tl.constexpr,
):  # fmt: skip
    """Walk the frames (backwards when REVERSE) with an R x D fp32 state X; rows split across programs.

    Per frame t, with keep_t = 0 at a chunk's last frame (ENDS) and 1 elsewhere:
        PRE_KEEP: X *= keep_t;  STORE_PRE: OUT_t = X
        ADD_FIRST: X += B_t; STORE_POST: OUT_t = X; X = X N_t
        else:      X = X N_t + B_t; POST_KEEP: X *= keep_t; STORE_POST: OUT_t = X
    N_t (D x D) is read at N + frame*D*D with strides (snr, snc) (swapped: N_tᵀ); B_t, OUT_t are
    (R x D) contiguous per frame. The state after the walk goes to XF; X0 (R x D) starts it (else 0).
    """
    bh = tl.program_id(0).to(tl.int64)
    offs_r = tl.program_id(1) * BR + tl.arange(0, BR)
    offs_d = tl.arange(0, BD)
    mask_r = offs_r < R
    mask_d = offs_d < D
    rd_mask = mask_r[:, None] & mask_d[None, :]
    rd = offs_r[:, None] * D + offs_d[None, :]
    dd_mask = mask_d[:, None] & mask_d[None, :]
    dd = offs_d[:, None] * snr + offs_d[None, :] * snc
    if HAS_X0:
        x = tl.load(X0 + bh * R * D + rd, mask=rd_mask, other=0.0).to(tl.float32)
    else:
        x = tl.zeros((BR, BD), dtype=tl.float32)
    for i in range(T):
        if REVERSE:
            t = T - 1 - i
        else:
            t = i
        frame = bh * T + t
        keep = 1.0 - tl.load(ENDS + t).to(tl.float32)
        if PRE_KEEP:
            x = x * keep
        if STORE_PRE:
            tl.store(OUT + frame * R * D + rd, x, mask=rd_mask)
        n = tl.load(N + frame * D * D + dd, mask=dd_mask, other=0.0)
        bt = tl.load(Bm + frame * R * D + rd, mask=rd_mask, other=0.0)
        if ADD_FIRST:
            x = x + bt
            if STORE_POST:
                tl.store(OUT + frame * R * D + rd, x, mask=rd_mask)
            x = tl.dot(x, n, input_precision="ieee")
        else:
            x = tl.dot(x, n, input_precision="ieee") + bt
            if POST_KEEP:
                x = x * keep
            if STORE_POST:
                tl.store(OUT + frame * R * D + rd, x, mask=rd_mask)
    tl.store(XF + bh * R * D + rd, x, mask=rd_mask)


@triton.jit
def key_grads(
    K, V, BETA, DA, DU, DK, DV, DBETA,
    H, T, S, D, E,
    skb, skh, skt, sks,
    svb, svh, svt, svs,
    sbb, sbh, sbt, sbs,
    V_ONES: tl.constexpr,
    BS: tl.constexpr, BD: tl.constexpr, BE: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Gradients of A_t = K̂ᵀ diag β K̂ and U_t = Vᵀ diag β K̂ for a tile of a frame's tokens:
        G = K̂ dAᵀ + V dU  (the gradient of βK̂),  dK̂ = β (K̂ dA + G),  dβ = Σ_d G K̂,  dV = β K̂ dUᵀ.
    dA (D x D) and dU (E x D) are fp32 per frame; outputs fp32, contiguous per frame. V_ONES: V = 1."""
    pid = tl.program_id(0)
    s0 = tl.program_id(1) * BS
    b = (pid // (H * T)).to(tl.int64)
    h = ((pid // T) % H).to(tl.int64)
    t = (pid % T).to(tl.int64)
    frame = pid.to(tl.int64)
    rows = s0 + tl.arange(0, BS)
    offs_d = tl.arange(0, BD)
    offs_e = tl.arange(0, BE)
    mask_s = rows < S
    mask_d = offs_d < D
    mask_e = offs_e < E
    sd_mask = mask_s[:, None] & mask_d[None, :]
    k = tl.load(
        K + b * skb + h * skh + t * skt + rows[:, None] * sks + offs_d[None, :], mask=sd_mask, other=0.0
    ).to(tl.float32)
    beta = tl.load(BETA + b * sbb + h * sbh + t * sbt + rows * sbs, mask=mask_s, other=0.0).to(tl.float32)
    da = tl.load(
        DA + frame * D * D + offs_d[:, None] * D + offs_d[None, :],
        mask=mask_d[:, None] & mask_d[None, :],
        other=0.0,
    )
    du = tl.load(
        DU + frame * E * D + offs_e[:, None] * D + offs_d[None, :],
        mask=mask_e[:, None] & mask_d[None, :],
        other=0.0,
    )
    g = tl.dot(k, tl.trans(da), input_precision=PRECISION)
    direct = tl.dot(k, da, input_precision=PRECISION)
    if V_ONES:
        g += tl.sum(du, axis=0)[None, :]  # V = 1 in the single row of the normaliser's state
    else:
        v = tl.load(
            V + b * svb + h * svh + t * svt + rows[:, None] * svs + offs_e[None, :],
            mask=mask_s[:, None] & mask_e[None, :],
            other=0.0,
        ).to(tl.float32)
        g += tl.dot(v, du, input_precision=PRECISION)
        dv = tl.dot(k, tl.trans(du), input_precision=PRECISION) * beta[:, None]
        tl.store(
            DV + frame * S * E + rows[:, None] * E + offs_e[None, :],
            dv,
            mask=mask_s[:, None] & mask_e[None, :],
        )
    dk = (direct + g) * beta[:, None]
    tl.store(DK + frame * S * D + rows[:, None] * D + offs_d[None, :], dk, mask=sd_mask)
    tl.store(DBETA + frame * S + rows, tl.sum(g * k, axis=1), mask=mask_s)
