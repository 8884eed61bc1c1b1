"""ODE distillation: the teacher's sampling trajectories on disk, and the student's regression onto them.

The teacher samples chunk by chunk with its own Euler schedule and guidance through the streaming state
(`ChunkSession`, as `generate --mode streaming` does), from seeded noise; its σ grid is merged with the
student's σ (1, 0.96, 0.889, 0.727, 0 by default) so that the states at those noise levels are points
of the Euler trajectory itself, not interpolations. Every chunk's state at each student σ is stored:

    {k}.states    (S, C, T, H, W)  the whole clip at each of the S student σ (the last: σ = 0, the sample);
                                   frame 0 is the clean first-frame latent in every state
    {k}.camera    (T, 20), {k}.plucker (48, T, H, W), {k}.text (L, D), {k}.text_mask (L,)

in shards `shard_00000.safetensors`, ... written atomically; `index.json` (the settings and the sample
list) is written last. A rerun with the same settings skips finished shards (resumable) and reproduces
the same tensors (sample k's noise is seeded by (seed, k)); other settings are refused.

Regression (`ode_regression_loss`): each chunk of a stored clip is shown to the student at one of the
student's σ, drawn per (sample, chunk), with the teacher's clean earlier chunks as streaming context (the
inference situation); the loss is the squared error of the student's x₀ prediction against the
teacher's sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..model.transformer import SanaWMTransformer
from ..sampling import ChunkSession, Conditions, EulerSchedule, Guidance, sample_bidirectional
from ..training.cache import ShardedSamples, check_resume, condition_batch, write_shards

INDEX, FORMAT, VERSION = "index.json", "sanawm-ode-trajectories", 1
NO_GUIDANCE = Guidance(1.0)


@dataclass(frozen=True)
class SigmaSchedule:
    """Euler over an explicit decreasing σ list (a segment of a teacher's schedule)."""

    values: tuple[float, ...]

    def sigmas(self) -> torch.Tensor:
        return torch.tensor(self.values, dtype=torch.float32)


def merged_sigmas(teacher: torch.Tensor, keep: Sequence[float]) -> list[float]:
    """The teacher's σ grid with the `keep` σ inserted (decreasing, duplicates within 1e-6 merged)."""
    out: list[float] = []
    for s in sorted({float(v) for v in teacher.tolist()} | {float(k) for k in keep}, reverse=True):
        if not out or out[-1] - s > 1e-6:
            out.append(s)
    return out


@torch.no_grad()
def teacher_trajectory(
    model: SanaWMTransformer,
    noise: torch.Tensor,
    first_latent: torch.Tensor,
    cond: Conditions,
    chunks: Sequence[int] | None,
    schedule: EulerSchedule,
    keep_sigmas: Sequence[float],
    guidance: Guidance = NO_GUIDANCE,
    kv_window: int | None = 2,
) -> torch.Tensor:
    """States (B, S, C, T, H, W) of the teacher's chunk-by-chunk Euler sampling at the S `keep_sigmas`
    (decreasing from 1 to 0), from noise (B, C, T, H, W) with frame 0 pinned to first_latent.
    `chunks` None: the teacher is bidirectional and samples all frames at once (`sample_bidirectional`)."""
    keep = [float(k) for k in keep_sigmas]
    if keep[0] != 1.0 or keep[-1] != 0.0 or any(b >= a for a, b in zip(keep, keep[1:], strict=False)):
        raise ValueError(f"keep_sigmas must decrease from 1 to 0, got {keep}")
    grid = merged_sigmas(schedule.sigmas(), keep)
    if grid[0] != 1.0:
        raise ValueError(f"the teacher's schedule must start at σ = 1, got {grid[0]}")
    segments = [
        SigmaSchedule(tuple(s for s in grid if hi + 1e-6 >= s >= lo - 1e-6))
        for hi, lo in zip(keep, keep[1:], strict=False)
    ]
    if chunks is None:
        states = [noise.clone()]
        states[0][:, :, :1] = first_latent.to(noise.dtype)
        for segment in segments:
            states.append(sample_bidirectional(model, states[-1], first_latent, cond, segment, guidance))
        return torch.stack(states, 1)
    branches = [guidance.unconditional(cond), cond] if guidance.enabled else [cond]
    session = ChunkSession(model, branches, guidance, kv_window, streaming=True)
    per_chunk, start = [], 0
    for size in chunks:
        x = noise[:, :, start : start + size].clone()
        first = start == 0
        if first:
            x[:, :, :1] = first_latent.to(x.dtype)
        states = [x]
        for segment in segments:
            x = session.denoise(x, segment, first)
            states.append(x)
        session.commit(x)
        per_chunk.append(torch.stack(states, 1))
        start += size
    return torch.cat(per_chunk, 3)


def build_trajectories(
    out_dir,
    teacher: SanaWMTransformer,
    dataset: Dataset,
    *,
    samples: int,
    latent_frames: int,
    chunks: Sequence[int] | None,
    schedule: EulerSchedule,
    keep_sigmas: Sequence[float],
    guidance: Guidance,
    kv_window: int | None,
    seed: int,
    settings: dict,
    shard_size: int = 16,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    progress=None,
) -> Path:
    """Write (or finish) the trajectory folder; returns it. `dataset` items give the conditions
    (latents (C, T', H, W) with T' ≥ latent_frames, of which only frame 0 is read; camera; plucker;
    text; text_mask). `settings` (JSON-able) identify the run: a folder made with other settings is
    refused. `bf16`: autocast the teacher on CUDA (the stored states stay float32)."""
    from ..training.data import derive_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "version": VERSION,
        **settings,
        "samples": samples,
        "latent_frames": latent_frames,
        "chunks": None if chunks is None else list(chunks),
        "keep_sigmas": [float(s) for s in keep_sigmas],
        "teacher_sigmas": [round(s, 6) for s in merged_sigmas(schedule.sigmas(), keep_sigmas)],
        "guidance": [guidance.scale, guidance.drop_text, guidance.drop_camera],
        "kv_window": kv_window,
        "seed": seed,
        "shard_size": shard_size,
    }
    _check_resume(out, config)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    def fill(group: list[int]) -> dict[str, torch.Tensor]:
        batch = condition_batch(dataset, group, latent_frames, "trajectories")
        C, _, H, W = batch["latents"].shape[1:]
        noise = torch.stack(
            [
                torch.randn(
                    C, latent_frames, H, W, generator=torch.Generator().manual_seed(derive_seed(seed, k, 11))
                )
                for k in group
            ]
        )
        on = {k: batch[k].to(device) for k in ("text", "text_mask", "camera", "plucker")}
        cond = Conditions(on["text"], on["text_mask"], on["camera"], on["plucker"])
        # States stay float32 whatever the teacher's dtype (the network casts its inputs).
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            states = teacher_trajectory(
                teacher,
                noise.to(device),
                batch["latents"][:, :, :1].to(device),
                cond,
                chunks,
                schedule,
                keep_sigmas,
                guidance,
                kv_window,
            )
        tensors = {f"{k}.states": states[i].float().cpu() for i, k in enumerate(group)}
        for name in ("camera", "plucker", "text", "text_mask"):
            tensors.update({f"{k}.{name}": batch[name][i] for i, k in enumerate(group)})
        return tensors

    return write_shards(out, config, samples, shard_size, batch_size, fill, progress=progress)


def _check_resume(out: Path, config: dict) -> None:
    check_resume(
        out,
        config,
        "ODE trajectories",
        "choose an empty ode.dataset folder",
        "set --ode.dataset to another folder or delete that one",
    )


class TrajectoryDataset(ShardedSamples):
    """A finished trajectory folder: item k = {states, camera, plucker, text, text_mask}."""

    format, what = FORMAT, "ODE trajectory"
    fields = ("states", "camera", "plucker", "text", "text_mask")
    build_hint = "`sanawm distill ode CONFIG`"


def ode_regression_loss(
    student: SanaWMTransformer,
    states: torch.Tensor,
    sigmas: torch.Tensor,
    levels: torch.Tensor,
    cond: Conditions,
    chunks: Sequence[int],
    kv_window: int | None = 2,
    backward: bool = False,
) -> torch.Tensor:
    """Mean squared error of the student's x₀ predictions against the teacher's samples.

    states (B, S, C, T, H, W) from `teacher_trajectory` (S = len(sigmas), the last at σ = 0); levels
    (B, n_chunks) long: which of the first S − 1 σ each chunk of each sample is shown at. Chunk j sees
    the teacher's clean chunks < j through the streaming state, as the student's own outputs are seen at
    inference. Frame 0 (the image) is conditioning, not a target. `backward`: backpropagate chunk by
    chunk (activation memory of one chunk) and return the detached loss."""
    B, S = states.shape[:2]
    if levels.shape != (B, len(chunks)) or int(levels.max()) >= S - 1 or int(levels.min()) < 0:
        raise ValueError(f"levels must be (B, {len(chunks)}) in 0..{S - 2}, got {tuple(levels.shape)}")
    final = states[:, -1]
    targets = final.shape[2] - 1  # frames that are outputs
    session = ChunkSession(student, [cond], Guidance(1.0), kv_window, streaming=True)
    total, start = states.new_zeros(()), 0
    rows = torch.arange(B, device=states.device)
    for j, size in enumerate(chunks):
        first = start == 0
        lo = 1 if first else 0
        sigma = sigmas.to(states.device)[levels[:, j]]  # (B,)
        x = states[rows, levels[:, j].to(states.device), :, start : start + size]  # (B, C, size, H, W)
        timestep = (sigma * 1000.0)[:, None].expand(B, size).clone()
        if first:
            timestep[:, 0] = 0.0
        v = session.velocity(x, timestep)[:, :, lo:].float()
        x0 = x[:, :, lo:].float() - sigma[:, None, None, None, None] * v
        err = (x0 - final[:, :, start + lo : start + size].float()).square().mean(dim=(1, 3, 4)).sum(1).mean()
        loss = err / max(targets, 1)
        if backward:
            loss.backward()
            loss = loss.detach()
        total = total + loss
        with torch.no_grad():
            session.commit(final[:, :, start : start + size])
        start += size
    return total


__all__ = [
    "SigmaSchedule",
    "TrajectoryDataset",
    "build_trajectories",
    "merged_sigmas",
    "ode_regression_loss",
    "teacher_trajectory",
]
