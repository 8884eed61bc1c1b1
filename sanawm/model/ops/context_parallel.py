"""Context parallelism: the latent frames of one clip split evenly across ranks.

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
    """This rank's share of the clip: frames [rank * frames_per_rank, (rank + 1) * frames_per_rank)."""

    rank: int
    world: int
    frames_per_rank: int
    group: dist.ProcessGroup | None = None

    @staticmethod
    def from_process_group(total_frames: int, group: dist.ProcessGroup | None = None) -> ContextParallel:
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        if total_frames % world:
            raise ValueError(
                f"context parallelism splits frames evenly: {total_frames} latent frames over {world} ranks; "
                f"use a multiple of {world} latent frames"
            )
        return ContextParallel(rank, world, total_frames // world, group)

    @property
    def frame_start(self) -> int:
        return self.rank * self.frames_per_rank

    @property
    def total_frames(self) -> int:
        return self.world * self.frames_per_rank

    def local(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's frames of a full-clip tensor whose frame axis is `dim`."""
        return t.narrow(dim, self.frame_start, self.frames_per_rank)

    def gather(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """Concatenate every rank's `t` along `dim`, in rank order (gradients flow back)."""
        return torch.cat(self.stack(t), dim)

    def stack(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's `t`, in rank order (gradients flow back)."""
        return list(_AllGather.apply(t, self.group, self.rank, self.world).unbind(0))

    def halo(self, x: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames just before and after this rank's frames; x (B, T_local, ...) frame-major.

        Returns left (B, width, ...), zeros on rank 0, and right (B, width, ...), empty on the last rank.
        """
        if width == 0:
            return x[:, :0], x[:, :0]
        if self.frames_per_rank < width:
            raise ValueError(
                f"each rank needs at least {width} latent frames for the temporal convs; it has "
                f"{self.frames_per_rank}"
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
