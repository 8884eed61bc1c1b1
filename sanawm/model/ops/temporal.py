"""Convolutions along time that respect the attention mode.

Every temporal op follows one rule: a frame may read any earlier frame (through a carried tail when
streaming) and later frames of its own chunk only. Bidirectional mode is the special case of one
chunk spanning the clip. Tensors are in token layout (B, T, S, C).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def chunk_ids(num_frames: int, chunks: Sequence[int] | None, device=None) -> torch.Tensor:
    """(T,) chunk index of each frame; one chunk when `chunks` is None."""
    if chunks is None:
        return torch.zeros(num_frames, dtype=torch.long, device=device)
    if sum(chunks) != num_frames or min(chunks) < 1:
        raise ValueError(f"chunk sizes {list(chunks)} must be positive and sum to the {num_frames} frames")
    return torch.repeat_interleave(
        torch.arange(len(chunks), device=device), torch.tensor(list(chunks), device=device)
    )


def _future_ok(num_frames: int, chunks, offset: int, device) -> torch.Tensor:
    """(T,) 1 where frame t + offset exists and lies in the chunk of frame t."""
    ids = chunk_ids(num_frames, chunks, device)
    ok = torch.zeros(num_frames, dtype=torch.bool, device=device)
    if offset < num_frames:
        ok[: num_frames - offset] = ids[offset:] == ids[: num_frames - offset]
    return ok


def history(x: torch.Tensor, tail: torch.Tensor | None, frames: int) -> torch.Tensor:
    """x with `frames` frames of earlier context prepended: the carried tail or zeros."""
    if frames == 0:
        return x
    if tail is None:
        tail = x.new_zeros(x.shape[0], frames, *x.shape[2:])
    return torch.cat([tail.to(x.dtype), x], 1)


def symmetric_short_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    chunks: Sequence[int] | None = None,
    tail: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise filter over frames t-(K-1) .. t+(K-1) built from one causal kernel w (C, 1, K):
    tap t-m and tap t+m both weigh w[K-1-m] (the centre once). Future taps stop at the chunk end.

    x (B, T, S, C); tail (B, K-1, S, C) of earlier frames or None. Returns (y, new_tail).
    """
    T = x.shape[1]
    K = weight.shape[-1]
    w = weight[:, 0, :].to(x.dtype)  # (C, K)
    xh = history(x, tail, K - 1)
    y = torch.zeros_like(x)
    for m in range(K):  # past taps, including the centre
        y = y + xh[:, K - 1 - m : K - 1 - m + T] * w[:, K - 1 - m]
    for m in range(1, K):  # future taps inside the chunk
        if m >= T:
            break
        ok = _future_ok(T, chunks, m, x.device)[: T - m].to(x.dtype)[None, :, None, None]
        y[:, : T - m] = y[:, : T - m] + x[:, m:] * w[:, K - 1 - m] * ok
    return y, xh[:, -(K - 1) :] if K > 1 else xh[:, :0]


def temporal_conv3(
    x: torch.Tensor,
    weight: torch.Tensor,
    chunks: Sequence[int] | None = None,
    tail: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full (C_out, C_in, 3, 1) conv over frames t-1, t, t+1; t+1 only inside the chunk.

    x (B, T, S, C); tail (B, 1, S, C) or None. Returns (y, new_tail).
    """
    T = x.shape[1]
    w = weight[..., 0].to(x.dtype)  # (C_out, C_in, 3)
    xh = history(x, tail, 1)
    y = xh[:, :T] @ w[:, :, 0].T + x @ w[:, :, 1].T
    if T > 1:
        ok = _future_ok(T, chunks, 1, x.device)[: T - 1].to(x.dtype)[None, :, None, None]
        y[:, : T - 1] = y[:, : T - 1] + (x[:, 1:] @ w[:, :, 2].T) * ok
    return y, xh[:, -1:]


def conv_with_halo(conv, x: torch.Tensor, weight: torch.Tensor, chunks, cp, width: int) -> torch.Tensor:
    """Run a chunk-aware temporal conv (`symmetric_short_conv` or `temporal_conv3`) on this rank's
    frames x (B, T_local, S, C), with `width` frames of the neighbouring ranks as context."""
    left, right = cp.halo(x, width)
    T = x.shape[1]
    ids = chunk_ids(cp.total_frames, chunks)[cp.frame_start : cp.frame_start + T + right.shape[1]]
    sizes = torch.unique_consecutive(ids, return_counts=True)[1].tolist()
    y, _ = conv(torch.cat([x, right], 1), weight, sizes, left)
    return y[:, :T]
