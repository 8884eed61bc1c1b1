"""Context parallelism: the latent frames of one clip split across ranks, as evenly as they divide
(121 frames over 2 ranks: 61 + 60; the first ranks take the extra frames).

Each rank runs the network on its own contiguous frames; three things cross ranks, all exact and
differentiable (autograd-aware all-gathers):
- GDN scans: every rank reduces its frames to one affine summary (P = M_a..M_b, H = the state from
  zero), the D x D summaries are all-gathered, and each rank composes the summaries of the ranks
  before it (forward) or after it (reverse) into its initial state.
- Temporal convs: a halo of neighbouring frames (K-1 for the K short conv, 1 for the temporal conv).
- Softmax attention: keys and values are all-gathered; each rank attends with its own queries.
Everything else is per token or per frame and stays local.

Autograd runs the backward of a collective only on ranks that used its result, and a collective
must run on every rank: so each exchange is a single all-gather whose result every rank uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ContextParallel:
    """This rank's share of the clip: frames [frame_start, frame_start + frames); `sizes` holds every
    rank's frame count, in rank order."""

    rank: int
    sizes: tuple[int, ...]
    group: dist.ProcessGroup | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rank < len(self.sizes) or min(self.sizes) < 1:
            raise ValueError(f"rank {self.rank} and frame counts {self.sizes}: every rank needs ≥ 1 frame")

    @staticmethod
    def split(total_frames: int, world: int) -> tuple[int, ...]:
        """Frame counts of `world` ranks sharing `total_frames`, as even as possible, larger first."""
        if total_frames < world:
            raise ValueError(
                f"context parallelism over {world} ranks needs at least {world} latent frames, got "
                f"{total_frames}"
            )
        base, extra = divmod(total_frames, world)
        return tuple(base + (r < extra) for r in range(world))

    @staticmethod
    def from_process_group(total_frames: int, group: dist.ProcessGroup | None = None) -> ContextParallel:
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        return ContextParallel(rank, ContextParallel.split(total_frames, world), group)

    @property
    def world(self) -> int:
        return len(self.sizes)

    @property
    def frames(self) -> int:
        """This rank's number of frames."""
        return self.sizes[self.rank]

    @property
    def frame_start(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def total_frames(self) -> int:
        return sum(self.sizes)

    def local(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's frames of a full-clip tensor whose frame axis is `dim`."""
        return t.narrow(dim, self.frame_start, self.frames)

    def gather(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """Concatenate every rank's `t` along `dim` in rank order; gradients flow back. `dim` holds this
        rank's frames, or its tokens frame-major (frames × tokens a frame). Shares of unequal length
        travel padded to the longest and are trimmed here."""
        per, rest = divmod(t.shape[dim], self.frames)
        if rest or not per:
            raise ValueError(
                f"gather expects this rank's {self.frames} frames (times a whole number of tokens) on dim "
                f"{dim}, got {t.shape[dim]}"
            )
        longest = max(self.sizes) * per
        if t.shape[dim] < longest:
            pad = list(t.shape)
            pad[dim] = longest - t.shape[dim]
            t = torch.cat([t, t.new_zeros(pad)], dim)
        pieces = [x.narrow(dim, 0, n * per) for x, n in zip(self.stack(t), self.sizes, strict=True)]
        return torch.cat(pieces, dim)

    def stack(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `t`, in rank order (gradients flow back)."""
        return list(_AllGather.apply(t, self.group, self.rank, self.world).unbind(0))

    def halo(self, x: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames just before and after this rank's frames; x (B, T_local, ...) frame-major.

        Returns left (B, width, ...), zeros on rank 0, and right (B, width, ...), empty on the last rank.
        """
        if width == 0:
            return x[:, :0], x[:, :0]
        if min(self.sizes) < width:
            raise ValueError(
                f"each rank needs at least {width} latent frames for the temporal convs; the split is "
                f"{list(self.sizes)}: use fewer context-parallel ranks or longer clips"
            )
        # One collective whose result every rank uses (each has a neighbour), so the backward
        # collectives line up across ranks.
        ends = self.stack(torch.cat([x[:, :width], x[:, -width:]], 1))
        left = ends[self.rank - 1][:, width:] if self.rank > 0 else torch.zeros_like(x[:, :width])
        right = ends[self.rank + 1][:, :width] if self.rank < self.world - 1 else x[:, :0]
        return left, right


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for this rank's piece (an all-reduce of
    the contiguous gradient: gloo has no reduce-scatter, and non-contiguous gradients must not reach
    the collective)."""

    @staticmethod
    def forward(ctx, x, group, rank, world):
        ctx.group, ctx.rank = group, rank
        out = [torch.empty_like(x, memory_format=torch.contiguous_format) for _ in range(world)]
        dist.all_gather(out, x.contiguous(), group=group)
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rank], None, None, None
