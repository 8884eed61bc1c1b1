"""The self-forcing rollout: the few-step student generates chunk by chunk on its own outputs, with the
inference streaming state (`sanawm.sampling.ChunkSession`, the object `sample_chunked` and the
interactive sessions use), so what the student is trained on is what it does at inference.

Per chunk j (Self-Forcing, Huang et al. 2025): the student runs its few-step schedule up to an exit step
s_j (steps before it without gradients), and its x₀ prediction at s_j is the chunk's output; that
output, detached, is committed to the stream state as clean context (one σ = 0 pass, no gradients).
Gradients flow only through the exit step's network call. With every s_j = the last step this is
exactly the few-step sampler: `sample_chunked(..., schedule=FewStepSchedule(...), streaming=True)` with
its default clean context (`context_sigma=0`, what `distill export` writes into the student's defaults).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..model.transformer import SanaWMTransformer
from ..sampling import ChunkSession, Conditions, FewStepSchedule, Guidance


def self_forcing_rollout(
    model: SanaWMTransformer,
    noise: torch.Tensor,
    first_latent: torch.Tensor,
    cond: Conditions,
    chunks: Sequence[int],
    schedule: FewStepSchedule,
    kv_window: int | None = 2,
    renoise: Callable[[int, int], torch.Tensor] | None = None,
    exit_steps: Sequence[int] | None = None,
    grad_chunks: Sequence[bool] | None = None,
) -> torch.Tensor:
    """Latents (B, C, T, H, W) generated chunk by chunk; frame 0 is `first_latent` (B, C, 1, H, W).

    noise (B, C, T, H, W): each chunk's starting noise. renoise(chunk, step): the fresh noise of a
    few-step re-noising (shaped like the chunk); every chunk draws it once per schedule step whatever
    its exit step, so the random stream matches the sampler's (None: the global RNG).
    exit_steps: per chunk, the schedule step whose x₀ prediction is the output (None: the last step
    for every chunk, i.e. the sampler). grad_chunks: per chunk, whether its exit step takes gradients
    (None: all, when grad mode is on).
    """
    if sum(chunks) != noise.shape[2]:
        raise ValueError(f"chunks {list(chunks)} must sum to the {noise.shape[2]} latent frames")
    sigmas = schedule.sigmas().to(noise.device)
    last = len(sigmas) - 2
    exits = [last] * len(chunks) if exit_steps is None else [int(s) for s in exit_steps]
    if len(exits) != len(chunks) or not all(0 <= s <= last for s in exits):
        raise ValueError(
            f"exit_steps {exits} must give one step in 0..{last} for each of {len(chunks)} chunks"
        )
    grads = [True] * len(chunks) if grad_chunks is None else list(grad_chunks)
    session = ChunkSession(model, [cond], Guidance(1.0), kv_window, streaming=True)
    out, start = [], 0
    for j, size in enumerate(chunks):
        x = noise[:, :, start : start + size].clone()
        first = start == 0
        if first:
            x[:, :, :1] = first_latent.to(x.dtype)
        step_noise = None if renoise is None else (lambda i, j=j: renoise(j, i))
        s = exits[j]
        with torch.no_grad():
            for i in range(s):
                x = session.step(x, sigmas, i, first, True, step_noise)
        with torch.set_grad_enabled(torch.is_grad_enabled() and grads[j]):
            x = exit_step(session, x, sigmas[s], first)
        for i in range(s, last + 1):  # the draws the sampler makes from the exit step on
            if step_noise is not None:
                step_noise(i)
        with torch.no_grad():
            session.commit(x.detach())
        out.append(x)
        start += size
    return torch.cat(out, 2)


def exit_step(session: ChunkSession, x: torch.Tensor, sigma: torch.Tensor, clean_first: bool) -> torch.Tensor:
    """The chunk's x₀ prediction at σ (the clean image frame kept), as the sampler's last step makes it."""
    lo = 1 if clean_first else 0
    v = session.velocity(x, session.timesteps(x, sigma, clean_first))[:, :, lo:].float()
    x0 = x[:, :, lo:].float() - sigma * v
    return torch.cat([x[:, :, :lo], x0.to(x.dtype)], 2)


__all__ = ["exit_step", "self_forcing_rollout"]
