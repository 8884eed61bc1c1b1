"""Typed streaming state: everything a block carries from one chunk to the next.

Memory stays constant in the video length: a D x D state (and a D-vector normaliser) per GDN head,
K-conv and temporal-conv tails of a few frames, and a softmax KV window of the first chunk (the
sink) plus the most recent chunks. States are immutable: `stream_step` returns a new one, so a
chunk can be denoised many times from the same state and committed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .ops.gdn import GDNState


@dataclass(frozen=True)
class KVWindow:
    """Keys/values (B, H, N_chunk, D) of the sink chunk and of the `size` most recent later chunks."""

    size: int | None
    sink: tuple[torch.Tensor, torch.Tensor] | None = None
    recent: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        entries = ([self.sink] if self.sink is not None else []) + list(self.recent)
        if not entries:
            return None
        return torch.cat([k for k, _ in entries], 2), torch.cat([v for _, v in entries], 2)

    def push(self, k: torch.Tensor, v: torch.Tensor) -> KVWindow:
        if self.sink is None:
            return KVWindow(self.size, (k, v), ())
        recent = self.recent + ((k, v),)
        if self.size is not None:
            recent = recent[len(recent) - self.size :] if self.size > 0 else ()
        return KVWindow(self.size, self.sink, recent)


@dataclass(frozen=True)
class AttentionState:
    """Per-block self-attention carry. GDN blocks use the scan states and K-conv tails (B, K-1, S, C);
    softmax blocks use the KV windows. Camera-branch entries are None without camera input."""

    gdn: GDNState | None = None
    gdn_cam: GDNState | None = None
    k_tail: torch.Tensor | None = None
    k_cam_tail: torch.Tensor | None = None
    kv: KVWindow | None = None
    kv_cam: KVWindow | None = None


@dataclass(frozen=True)
class BlockState:
    attn: AttentionState = field(default_factory=AttentionState)
    ffn_tail: torch.Tensor | None = None  # (B, 1, S, C): last frame entering the Mix-FFN temporal conv


@dataclass(frozen=True)
class StreamState:
    """The whole model's carry between chunks."""

    blocks: tuple[BlockState, ...]
    frames_done: int = 0
    chunks_done: int = 0
    kv_window: int | None = 2

    @staticmethod
    def initial(num_blocks: int, kv_window: int | None = 2) -> StreamState:
        return StreamState(tuple(BlockState() for _ in range(num_blocks)), 0, 0, kv_window)

    def nbytes(self) -> int:
        """Bytes held by all tensors of the state (constant in video length for a finite window)."""
        seen = 0
        for t in _tensors(self):
            seen += t.numel() * t.element_size()
        return seen


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _tensors(getattr(obj, name))
