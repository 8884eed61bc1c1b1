"""torchrun support: the process group, FSDP2 sharding, and full (unsharded) state for checkpoints.

One process (plain `python` / `sanawm train`) needs no process group and every helper here degrades to
the plain single-process call. Under `torchrun --nproc-per-node N` (it sets RANK, WORLD_SIZE,
LOCAL_RANK): NCCL on CUDA, gloo on the CPU; the model is sharded with FSDP2 (`fully_shard` on every
block, then on the root) for data parallelism, gradients are averaged over ranks, and rank 0 alone logs
and writes checkpoints from full state dicts gathered with `torch.distributed.checkpoint.state_dict`.

Context parallelism (`run.context_parallel` = c > 1): the W ranks form W / c groups of c consecutive
ranks (`DistEnv.cp_group`); the ranks of a group read the same samples (data-parallel rank
`dp_rank` = rank // c of `dp_size` = W / c) and each runs the network on its share of the latent frames
(`sanawm.model.ops.context_parallel`). FSDP2 still shards over the whole world and averages gradients
over all W ranks; the trainer scales each rank's loss by c so that this average is the sum over a
CP group (the clip's gradient) averaged over the data-parallel groups.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor, distribute_tensor

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    cp_size: int = 1
    cp_group: dist.ProcessGroup | None = None

    @property
    def cp_rank(self) -> int:
        return self.rank % self.cp_size

    @property
    def dp_rank(self) -> int:
        return self.rank // self.cp_size

    @property
    def dp_size(self) -> int:
        return self.world_size // self.cp_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def training_attention_backends() -> None:
    """Leave cuDNN out of scaled_dot_product_attention in a training process (flash, memory-efficient and
    math stay). PyTorch's cuDNN attention backward fails on some shapes with "Expected
    mha_graph.execute(...).is_good() to be true" (pytorch/pytorch#122695, #134001): the refiner's steps on
    clips cut after their target block hit it on an H100 (torch 2.11, 2026-12-07), and a run died at its
    first step. Inference keeps cuDNN attention, the fastest forward in the benchmarks."""
    torch.backends.cuda.enable_cudnn_sdp(False)


def init_distributed(device: str = "auto", context_parallel: int = 1) -> DistEnv:
    """Join torchrun's process group if launched by it; pick the device ('auto', 'cpu' or 'cuda');
    with `context_parallel` = c > 1, make the W / c context-parallel groups of c consecutive ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world % context_parallel:
        raise ValueError(
            f"run.context_parallel={context_parallel} must divide the number of ranks ({world}); "
            f"launch a multiple of {context_parallel} ranks with torchrun --nproc-per-node"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("run.device is 'cuda' but torch sees no CUDA device; use --run.device=cpu")
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices; "
                "lower torchrun's --nproc-per-node"
            )
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        training_attention_backends()
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None
        )
    cp_group = None
    if context_parallel > 1:
        for first in range(0, world, context_parallel):  # every rank creates every group
            group = dist.new_group(list(range(first, first + context_parallel)))
            if first <= rank < first + context_parallel:
                cp_group = group
    return DistEnv(rank, world, local, dev, context_parallel, cp_group)


def shutdown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """FSDP2 over all ranks: each block is one all-gather unit, the root holds the rest. No-op alone."""
    if not env.distributed:
        return model
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    # The network returns a reshaped view; the trainer never writes into it in place, which is what
    # this FSDP2 warning is about.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    return model


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= env.world_size
    return value


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def gather_objects(obj, env: DistEnv) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly sharded) parameter; collective under FSDP2."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """This rank's part of `full`, laid out like the (possibly sharded) tensor `like`."""
    full = full.to(device=like.device, dtype=like.dtype)
    if isinstance(like, DTensor):
        return distribute_tensor(full, like.device_mesh, like.placements)
    return full


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU tensors of the whole model on rank 0 (empty on the other ranks). Collective."""
    return get_model_state_dict(model, options=_FULL)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (present on every rank) into a plain or sharded model."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state keyed by parameter names, whole, on rank 0. Collective."""
    return get_optimizer_state_dict(model, optimizer, options=_FULL)


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    # strict=False: a parameter that never had a gradient (e.g. the camera branch while every step so far
    # dropped the camera) has no Adam state, exactly as in the run that saved it.
    set_optimizer_state_dict(
        model, optimizer, state, options=StateDictOptions(full_state_dict=True, strict=False)
    )


__all__ = [
    "DistEnv",
    "all_reduce_mean",
    "barrier",
    "full_model_state",
    "full_optimizer_state",
    "full_tensor",
    "gather_objects",
    "init_distributed",
    "load_model_state",
    "load_optimizer_state",
    "shard_like",
    "shard_model",
    "shutdown",
]
