"""Frame-wise Gated DeltaNet: the recurrence, a per-frame reference and a parallel/chunked form.

One recurrent step consumes a whole latent frame. Per head, with the frame's tokens as rows
(K̂_t, V_t: S x D matrices, β_t: S gates, γ_t: one decay):

    S_t = S_{t-1} M_t + U_t,   M_t = γ_t (I - K̂_tᵀ diag(β_t) K̂_t),   U_t = V_tᵀ diag(β_t) K̂_t
    O_t = Q̂_t S_tᵀ

The normaliser z_t (a D-vector) follows the same rule with unrotated keys and target 1 (V = 1),
and the output is numerator / (denominator + eps). The camera branch runs the numerator alone.

Layout used throughout (the "frame layout"):
    q, k      (B, H, T, S, D)      queries / keys after feature map (and RoPE for the numerator)
    v         (B, H, T, S, Dv)
    beta      (B, H, T, S)         per-token delta-rule strength
    decay     (B, H, T)            per-frame γ in [0, 1]
    state     GDNState(num (B, H, Dv, D), den (B, H, D) or None)

Modes (how frames read each other), implemented once on top of either scan:
    bidirectional  inclusive forward scan over all frames + exclusive reverse scan (t+1..T)
    chunk_causal   inclusive forward scan over all frames + exclusive reverse scan that stops at
                   the end of each frame's chunk
Streaming is chunk_causal applied to one chunk at a time with the forward state carried.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .temporal import chunk_ids


@dataclass(frozen=True)
class GDNState:
    """Forward-scan state of one GDN head group: numerator (B, H, Dv, D) and normaliser (B, H, D)."""

    num: torch.Tensor
    den: torch.Tensor | None = None


@dataclass(frozen=True)
class GDNInputs:
    """Everything one GDN scan reads, in frame layout (see module docstring).

    `q_den` / `k_den` are the unrotated features of the normaliser path; None means numerator-only.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    beta: torch.Tensor
    decay: torch.Tensor
    q_den: torch.Tensor | None = None
    k_den: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.q.shape[2]


@dataclass(frozen=True)
class GDNOutput:
    num: torch.Tensor  # (B, H, T, S, Dv)
    den: torch.Tensor | None  # (B, H, T, S)
    state: GDNState  # forward state after the last frame


def chunk_ends(num_frames: int, chunks: Sequence[int] | None, device=None) -> torch.Tensor:
    """Bool (T,) on `device` marking the last frame of each chunk; `chunks=None` means one chunk
    (bidirectional, or a streamed chunk). That case is built on the device itself, with no copy from
    the host: a streamed step then neither waits for the GPU nor breaks a CUDA-graph capture."""
    if chunks is None:
        return torch.arange(num_frames, device=device) == num_frames - 1
    ids = chunk_ids(num_frames, chunks)
    return torch.cat([ids[1:] != ids[:-1], torch.ones(1, dtype=torch.bool)]).to(device)


# ---------------------------------------------------------------------------------------------------
# Reference: a readable loop over frames, written as a delta rule.
# ---------------------------------------------------------------------------------------------------


def gdn_reference(
    x: GDNInputs, chunks: Sequence[int] | None = None, state: GDNState | None = None
) -> GDNOutput:
    """Per-frame loop. `chunks=None` is the bidirectional mode, else the chunk-causal mode."""
    B, H, T, S, D = x.k.shape
    Dv = x.v.shape[-1]
    ends = chunk_ends(T, chunks)
    num_f, den_f = _zeros_state(x, state, B, H, D, Dv)
    num_out, den_out = [], []
    for t in range(T):  # forward, inclusive: frame t reads frames <= t
        num_f = _delta_step(num_f, x.k[:, :, t], x.v[:, :, t], x.beta[:, :, t], x.decay[:, :, t])
        num_out.append(torch.einsum("bhsd,bhed->bhse", x.q[:, :, t], num_f))
        if den_f is not None:
            ones = torch.ones_like(x.k_den[:, :, t, :, :1])
            den_f = _delta_step(den_f, x.k_den[:, :, t], ones, x.beta[:, :, t], x.decay[:, :, t])
            den_out.append(torch.einsum("bhsd,bhd->bhs", x.q_den[:, :, t], den_f[:, :, 0]))
    final = GDNState(num_f, None if den_f is None else den_f[:, :, 0])

    num_b = torch.zeros_like(num_f)
    den_b = None if den_f is None else torch.zeros_like(den_f)
    for t in reversed(range(T)):  # reverse, exclusive: frame t reads frames t+1 .. end of its chunk
        if ends[t]:
            num_b = torch.zeros_like(num_b)
            den_b = None if den_b is None else torch.zeros_like(den_b)
        num_out[t] = num_out[t] + torch.einsum("bhsd,bhed->bhse", x.q[:, :, t], num_b)
        num_b = _delta_step(num_b, x.k[:, :, t], x.v[:, :, t], x.beta[:, :, t], x.decay[:, :, t])
        if den_b is not None:
            den_out[t] = den_out[t] + torch.einsum("bhsd,bhd->bhs", x.q_den[:, :, t], den_b[:, :, 0])
            ones = torch.ones_like(x.k_den[:, :, t, :, :1])
            den_b = _delta_step(den_b, x.k_den[:, :, t], ones, x.beta[:, :, t], x.decay[:, :, t])
    den = torch.stack(den_out, 2) if den_out else None
    return GDNOutput(torch.stack(num_out, 2), den, final)


def _delta_step(state, k, v, beta, decay):
    """S <- γS + Σ_s β_s (v_s - γ S k_s) k_sᵀ over the frame's tokens. state (B,H,Dv,D), k (B,H,S,D)."""
    decayed = decay[..., None, None] * state
    predicted = torch.einsum("bhed,bhsd->bhse", decayed, k)
    error = (v - predicted) * beta[..., None]
    return decayed + torch.einsum("bhse,bhsd->bhed", error, k)


def _zeros_state(x: GDNInputs, state: GDNState | None, B, H, D, Dv):
    dtype, device = x.k.dtype, x.k.device
    num = torch.zeros(B, H, Dv, D, dtype=dtype, device=device) if state is None else state.num.to(dtype)
    if x.k_den is None:
        return num, None
    den = (
        torch.zeros(B, H, D, dtype=dtype, device=device) if state is None or state.den is None else state.den
    )
    return num, den.to(dtype)[:, :, None, :]


# ---------------------------------------------------------------------------------------------------
# Parallel / chunked form: all transitions at once, a log-depth scan inside chunks of frames.
# ---------------------------------------------------------------------------------------------------


def gdn_parallel(
    x: GDNInputs,
    chunks: Sequence[int] | None = None,
    state: GDNState | None = None,
    scan_chunk: int = 32,
    cp=None,
) -> GDNOutput:
    """Same function as `gdn_reference`, with the transitions built in parallel over frames and the
    D x D state scan done as an associative (Hillis-Steele) scan inside blocks of `scan_chunk` frames.

    With `cp` (a `ContextParallel`), `x` holds this rank's frames, `chunks` describes the whole clip,
    and the ranks exchange D x D scan summaries; the returned state is the clip's final state."""
    T = x.num_frames
    if cp is None:
        ends = chunk_ends(T, chunks, x.k.device)
    else:
        ends = chunk_ends(cp.total_frames, chunks)[cp.frame_start : cp.frame_start + T]
    keep = (~ends).to(device=x.k.device, dtype=x.k.dtype)  # 0 at the last frame of a chunk

    M, U = transitions(x.k, x.v, x.beta, x.decay)
    num0 = None if state is None else state.num.to(x.k.dtype)
    states, num_last = _all_states(M, U, keep, num0, scan_chunk, cp)
    num = torch.einsum("bhtsd,bhted->bhtse", x.q, states)

    den, den_last = None, None
    if x.k_den is not None:
        Mz, Uz = transitions(x.k_den, None, x.beta, x.decay)
        den0 = None if state is None or state.den is None else state.den.to(x.k.dtype)[:, :, None]
        states_z, den_last = _all_states(Mz, Uz, keep, den0, scan_chunk, cp)
        den = torch.einsum("bhtsd,bhtd->bhts", x.q_den, states_z[:, :, :, 0])
        den_last = den_last[:, :, 0]
    return GDNOutput(num, den, GDNState(num_last, den_last))


GDN_KERNELS = ("auto", "pytorch", "rows", "memory", "chunk")
# Under torch.compile, "auto" traces a scan into the graph for calls of at most this many frames (a
# streaming step's chunk), free of the graph break the row kernel needs: the chunk scan (`gdn_chunk`) for
# 16-bit inputs, else the PyTorch scan. The 60 s 720p 4-step stream (compiled blocks, CUDA graphs; one
# H100, docs/benchmarks.md): 10.48 s on the chunk scan, 11.37 s on the PyTorch scan (on an H200 the
# PyTorch scan took 10.87 s against the row kernel's 11.69 s). Longer calls keep the row kernel.
COMPILED_SCAN_FRAMES = 8
_ALIASES = {"0": "pytorch", "off": "pytorch", "1": "auto", "on": "auto"}
_setting: str | None = None  # set_gdn_kernel's choice; None: the environment variable, else "auto"


def set_gdn_kernel(choice: str | None) -> None:
    """Choose the GDN path for this process (what the `run.gdn_kernel` config knob calls); None goes back
    to the environment variable SANAWM_GDN_KERNEL, else "auto". See `gdn_scan` for the choices."""
    global _setting
    _setting = None if choice is None else _resolve(choice, "set_gdn_kernel")


def gdn_kernel_setting() -> str:
    """The choice in force: `set_gdn_kernel`'s, else SANAWM_GDN_KERNEL, else "auto"."""
    if _setting is not None:
        return _setting
    return _resolve(os.environ.get("SANAWM_GDN_KERNEL", "auto"), "SANAWM_GDN_KERNEL")


def _resolve(choice: str, where: str) -> str:
    name = _ALIASES.get(choice.strip().lower(), choice.strip().lower())
    if name not in GDN_KERNELS:
        choices = ", ".join(GDN_KERNELS)
        raise ValueError(f"{where}={choice!r}: the GDN path is one of {choices} (0 or off: pytorch)")
    return name


KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _scan_tensors(x: GDNInputs, state: GDNState | None) -> list[torch.Tensor]:
    """The scan's input and initial-state tensors that are present."""
    tensors = [t for t in (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den) if t is not None]
    if state is not None:
        tensors += [t for t in (state.num, state.den) if t is not None]
    return tensors


def needs_grad(x: GDNInputs, state: GDNState | None = None) -> bool:
    """Whether autograd would record the scan: grad mode on and some input or state requires grad."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in _scan_tensors(x, state))


def kernel_supports(x: GDNInputs, state: GDNState | None) -> bool:
    """Whether both Triton paths take these inputs: float32/bfloat16/float16 with head dims up to 128 (the
    row kernel holds a block of state rows by the whole padded D in registers, the walks a D x D tile)."""
    dtypes_ok = all(t.dtype in KERNEL_DTYPES for t in _scan_tensors(x, state))
    return dtypes_ok and max(x.k.shape[-1], x.v.shape[-1]) <= 128


def gdn_path(x: GDNInputs, state: GDNState | None = None, cp=None, setting: str | None = None) -> str:
    """Which scan `gdn_scan` runs: "pytorch" (`gdn_parallel`), "rows" (`gdn_triton_rows`, inference),
    "memory" (`gdn_triton`, forward and backward) or "chunk" (`gdn_chunk`, inference, 16-bit inputs).
    `setting` defaults to `gdn_kernel_setting()`."""
    setting = gdn_kernel_setting() if setting is None else _resolve(setting, "setting")
    if setting == "chunk" and cp is None and not needs_grad(x, state):
        from . import gdn_chunk

        return "chunk" if gdn_chunk.supports(x, state) else "pytorch"
    if setting == "pytorch" or cp is not None or not x.k.is_cuda:
        return "pytorch"
    if setting == "memory":
        from . import gdn_triton

        return "memory" if gdn_triton.AVAILABLE and kernel_supports(x, state) else "pytorch"
    if needs_grad(x, state):
        return "pytorch"  # "auto" and "rows": the PyTorch scan trains faster than the kernels
    if setting == "auto" and x.num_frames <= COMPILED_SCAN_FRAMES and torch.compiler.is_compiling():
        from . import gdn_chunk  # traced into the compiled graph (the row kernel would break it)

        return "chunk" if gdn_chunk.CUDA_PRODUCTS and gdn_chunk.supports(x, state) else "pytorch"
    if setting == "auto" and x.k.dtype not in (torch.bfloat16, torch.float16):
        return "pytorch"  # the row kernel is 7x slower than the PyTorch scan on fp32 inputs
    from . import gdn_triton_rows

    return "rows" if gdn_triton_rows.AVAILABLE and kernel_supports(x, state) else "pytorch"


def gdn_scan(
    x: GDNInputs, chunks: Sequence[int] | None = None, state: GDNState | None = None, cp=None
) -> GDNOutput:
    """The GDN scan the network runs; every path computes `gdn_reference`'s function.

    Paths (`gdn_path` decides; measured at the 60 s 720p size, docs/benchmarks.md "Which GDN path runs"):
    - "pytorch": `gdn_parallel` in fp32. Always with context parallelism, and off CUDA unless "chunk" is
      asked for.
    - "rows": `gdn_triton_rows`, one Triton kernel per direction, inference only (1.4x the PyTorch scan
      on bf16 inputs, 7x slower on fp32).
    - "memory": `gdn_triton`, Triton kernels with a backward (an autograd Function); slower than the
      PyTorch scan (0.35x forward, 0.36x forward + backward) but half the activation memory of a
      60 s GDN layer's forward + backward (20 GiB instead of 40).
    - "chunk": `gdn_chunk`, 16-bit tensor-core matmuls for the per-frame transitions and outputs, the
      D x D recurrence in fp32, in PyTorch (no Triton, so torch.compile traces it); inference only.

    The setting (`set_gdn_kernel`, which the training config's `run.gdn_kernel` calls, else the
    environment variable SANAWM_GDN_KERNEL) picks among them:
    - "auto" (default): "rows" on CUDA for bf16/fp16 inputs when nothing needs gradients, else "pytorch";
      while torch.compile traces a call of at most `COMPILED_SCAN_FRAMES` frames, "chunk" for 16-bit
      inputs (where torch has bmm's out_dtype) and "pytorch" for the others.
    - "pytorch" (or "0", "off"): always the PyTorch scan.
    - "rows": "rows" whenever nothing needs gradients (fp32 inputs too), else "pytorch".
    - "memory": "memory" wherever it applies (CUDA, one rank, its dtypes), with or without gradients.
    - "chunk": `gdn_chunk.gdn_scan_chunk` (transitions and outputs as 16-bit tensor-core matmuls, the D x D
      recurrence in fp32; meant for a streamed chunk's few frames) whenever nothing needs gradients, one
      rank and 16-bit inputs (on the CPU too), else "pytorch".
    Where the chosen kernel does not apply (no Triton, float64, head dims over 128) the PyTorch scan runs."""
    path = gdn_path(x, state, cp)
    if path == "rows":
        from . import gdn_triton_rows

        return gdn_triton_rows.gdn_scan_rows(x, chunks, state)
    if path == "memory":
        from . import gdn_triton

        return gdn_triton.gdn_scan_triton(x, chunks, state)
    if path == "chunk":
        from . import gdn_chunk

        return gdn_chunk.gdn_scan_chunk(x, chunks, state)
    return gdn_parallel(to_fp32(x), chunks, state, cp=cp)


def to_fp32(x: GDNInputs) -> GDNInputs:
    """The inputs in float32 at least (float64 stays float64), as the PyTorch scan runs them."""

    def up(t):
        return t if t is None or t.dtype == torch.float64 else t.float()

    return GDNInputs(*(up(t) for t in (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den)))


def _all_states(M, U, keep, state0, scan_chunk, cp):
    """Per frame, forward state + exclusive reverse state, and the final forward state."""
    Mr, Ur = (M * keep[:, None, None]).flip(2), U.flip(2)
    fwd_init, rev_init, last = state0, None, None
    if cp is not None:
        fwd_init, rev_init, last = _cross_rank_states(M, U, Mr, Ur, state0, scan_chunk, cp)
    fwd, local_last = _scan(M, U, fwd_init, scan_chunk)
    rev = _reverse_exclusive(Mr, Ur, keep, scan_chunk, rev_init)
    return fwd + rev, (local_last if cp is None else last)


def _cross_rank_states(M, U, Mr, Ur, state0, scan_chunk, cp):
    """Initial forward state (ranks before this one), incoming reverse state (ranks after it) and
    the clip's final forward state, from every rank's affine summary. One all-gather of all four
    summaries, which every rank uses (it has a predecessor or a successor)."""
    (P, H), (Pr, Hr) = _summary(M, U, scan_chunk), _summary(Mr, Ur, scan_chunk)
    R = H.shape[-2]
    packed = cp.stack(torch.cat([P, H, Pr, Hr], -2))  # per rank (B, H, 2D + 2R, D)
    D = P.shape[-1]
    parts = [torch.split(p, [D, R, D, R], dim=-2) for p in packed]

    def fold(order, which, init):
        s = init
        for q in order:
            Pq, Hq = parts[q][which], parts[q][which + 1]
            s = Hq if s is None else s @ Pq + Hq
        return s

    fwd_init = fold(range(cp.rank), 0, state0)
    last = fold(range(cp.world), 0, state0)
    rev_init = fold(reversed(range(cp.rank + 1, cp.world)), 2, None)
    return fwd_init, rev_init, last


def _summary(M, U, scan_chunk):
    """(M_0 M_1 .. M_last, state after the last frame from zero)."""
    P_total, H_total = None, None
    for start in range(0, M.shape[2], scan_chunk):
        P, H = prefix_compose(M[:, :, start : start + scan_chunk], U[:, :, start : start + scan_chunk])
        P, H = P[:, :, -1], H[:, :, -1]
        H_total = H if H_total is None else H_total @ P + H
        P_total = P if P_total is None else P_total @ P
    return P_total, H_total


def transitions(k, v, beta, decay):
    """M_t = γ_t (I - K̂ᵀ diag β K̂) (B,H,T,D,D) and U_t = Vᵀ diag β K̂ (B,H,T,Dv,D); v=None means V = 1."""
    D = k.shape[-1]
    kb = k * beta[..., None]
    eye = torch.eye(D, dtype=k.dtype, device=k.device)
    M = decay[..., None, None] * (eye - torch.einsum("bhtsd,bhtse->bhtde", kb, k))
    U = kb.sum(3, keepdim=True) if v is None else torch.einsum("bhtse,bhtsd->bhted", v, kb)
    return M, U


def _reverse_exclusive(Mr, Ur, keep, scan_chunk, incoming=None):
    """R_t = keep_t * R⁺_{t+1}, where R⁺_t = keep_t R⁺_{t+1} M_t + U_t runs from the last frame back.

    Mr, Ur are the time-reversed (M * keep) and U; `incoming` is R⁺ just after the last frame (None: 0)."""
    inclusive, _ = _scan(Mr, Ur, incoming, scan_chunk)
    inclusive = inclusive.flip(2)
    after_last = torch.zeros_like(inclusive[:, :, :1]) if incoming is None else incoming[:, :, None]
    shifted = torch.cat([inclusive[:, :, 1:], after_last], 2)
    return shifted * keep[:, None, None]


def _scan(M, U, state0, scan_chunk):
    """All prefix states S_t = S_{t-1} M_t + U_t from S_{-1} = state0 (zeros when None).

    M (B,H,T,D,D), U (B,H,T,R,D) -> states (B,H,T,R,D) and the last state (B,H,R,D).
    """
    out = []
    state = state0
    for start in range(0, M.shape[2], scan_chunk):
        P, Hc = prefix_compose(M[:, :, start : start + scan_chunk], U[:, :, start : start + scan_chunk])
        states = Hc if state is None else Hc + state[:, :, None] @ P
        out.append(states)
        state = states[:, :, -1]
    return torch.cat(out, 2), state


def prefix_compose(M, U):
    """Inclusive prefix of the affine maps S -> S M_t + U_t: returns P_t = M_0..M_t and H_t (the state
    from zero). Log-depth: the pair (M_a, U_a) then (M_b, U_b) composes to (M_a M_b, U_a M_b + U_b)."""
    T = M.shape[2]
    offset = 1
    while offset < T:
        M_prev, U_prev = M[:, :, :-offset], U[:, :, :-offset]
        M_tail, U_tail = M[:, :, offset:], U[:, :, offset:]
        M = torch.cat([M[:, :, :offset], M_prev @ M_tail], 2)
        U = torch.cat([U[:, :, :offset], U_prev @ M_tail + U_tail], 2)
        offset *= 2
    return M, U


def combine(out: GDNOutput, eps: float) -> torch.Tensor:
    """numerator / (denominator + eps), or the numerator alone for the numerator-only rule."""
    if out.den is None:
        return out.num
    return out.num / (out.den[..., None] + eps)
