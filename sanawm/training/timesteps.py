"""Per-latent-frame noise levels σ and guidance dropout for flow-matching training (SPEC 6).

σ ∈ [0, 1] is drawn per latent frame, (B, T); the network sees timestep = 1000 σ. Every draw starts from
the shifted logit-normal of SD3/Sana:

    σ = shift(sigmoid(N(logit_mean, logit_std²))),   shift(s) = k s / (1 + (k − 1) s),  k = `shift` (≈ 10)

Bidirectional training (`chunks` None or one chunk) gives all frames of a sample one σ. Chunk-causal
training mixes five patterns over the chunks c = 0 … n−1 of the latent frames, one pattern per sample,
chosen with probabilities proportional to the `p_*` weights (SPEC 6: 0.1 / 0.4 / 0.4 / 0.1, and 0):

    same            one σ for every frame.
    increasing      n i.i.d. draws sorted ascending; chunk c takes the c-th smallest, so later chunks
                    are never less noisy than earlier ones (diffusion-forcing style).
    anchor          "last-chunk anchor": the last chunk takes a draw σ_L; every earlier chunk c takes
                    min(σ_L, anchor_max_sigma · u_c), u_c ~ U(0, 1) i.i.d. — a lightly noised (clean-ish)
                    history that stands in for imperfect generated context. Only the last chunk is a
                    target: earlier chunks get loss weight `anchor_context_weight` (default 0).
    clean_context   teacher forcing: the last chunk takes a draw σ_L, every earlier chunk σ = 0.
    first_chunk     the first chunk as generation starts it: chunk 0 takes a free draw σ_0 (not the
                    smallest of n, as under `increasing`), later chunks the sorted other draws, raised
                    to at least σ_0 (never less noisy than chunk 0). With a clean frame 0 this is the
                    image-to-first-chunk step, which the other patterns train at high σ only rarely
                    (`same`, and `increasing` when every draw is high).

Independently, with probability `clean_first_prob` (SPEC: 0.9) a sample's frame 0 (the encoded first
image) is clean, σ = 0. A frame with σ = 0 always has loss weight 0: its velocity target ε − x₀ cannot
be predicted from x₀ alone, and at inference such frames are conditioning, not outputs. Every other
frame has weight 1 (anchor context: `anchor_context_weight`).

The draws are made in a fixed order from one generator whatever the pattern mix (pattern choice, n
chunk draws, n anchor uniforms, the first-frame coin), so a (seed, step) pair always gives the same σ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .flow_matching import logit_normal_sigma

PATTERNS = ("same", "increasing", "anchor", "clean_context", "first_chunk")


@dataclass
class TimestepSampler:
    """Draws (σ, loss weight) per latent frame. See the module docstring for the patterns."""

    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 10.0
    clean_first_prob: float = 0.9
    p_same: float = 0.1
    p_increasing: float = 0.4
    p_anchor: float = 0.4
    p_clean_context: float = 0.1
    p_first_chunk: float = 0.0
    anchor_max_sigma: float = 0.1
    anchor_context_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.logit_std <= 0 or self.shift <= 0:
            raise ValueError(f"logit_std ({self.logit_std}) and shift ({self.shift}) must be > 0")
        for name in ("clean_first_prob", "anchor_max_sigma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.pattern_weights) < 0 or sum(self.pattern_weights) <= 0:
            raise ValueError(
                "the pattern weights p_same, p_increasing, p_anchor, p_clean_context, p_first_chunk must be "
                f"≥ 0 and not all zero, got {self.pattern_weights}"
            )
        if self.anchor_context_weight < 0:
            raise ValueError(f"anchor_context_weight must be ≥ 0, got {self.anchor_context_weight}")

    @property
    def pattern_weights(self) -> tuple[float, float, float, float, float]:
        """Weights in the order of `PATTERNS`."""
        return (self.p_same, self.p_increasing, self.p_anchor, self.p_clean_context, self.p_first_chunk)

    def draw(self, shape, generator: torch.Generator | None = None) -> torch.Tensor:
        """i.i.d. σ from the shifted logit-normal."""
        return logit_normal_sigma(shape, self.logit_mean, self.logit_std, self.shift, generator)

    def sample(
        self,
        batch: int,
        latent_frames: int,
        chunks: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """σ (B, T) and loss weight (B, T), float32 on the CPU.

        chunks: frames per chunk (summing to T) in chunk-causal training; None (bidirectional) or a
        single chunk draws the 'same' pattern for every sample.
        """
        sigma, weight, _ = self.sample_with_patterns(batch, latent_frames, chunks, generator)
        return sigma, weight

    def sample_with_patterns(self, batch, latent_frames, chunks=None, generator=None):
        """As `sample`, plus each sample's pattern index into `PATTERNS` (B,) int64."""
        T = int(latent_frames)
        chunks = (T,) if chunks is None else tuple(int(c) for c in chunks)
        if batch < 1 or T < 1 or sum(chunks) != T or min(chunks) < 1:
            raise ValueError(f"need batch ≥ 1 and positive chunks {list(chunks)} summing to T = {T}")
        n = len(chunks)
        probs = torch.tensor(self.pattern_weights, dtype=torch.float64)
        pattern = torch.multinomial(probs / probs.sum(), batch, replacement=True, generator=generator)
        if n == 1:
            pattern = torch.zeros_like(pattern)  # with one chunk every pattern is 'same'
        draws = self.draw((batch, n), generator)  # (B, n)
        uniforms = torch.rand((batch, n), generator=generator)
        clean_first = torch.rand(batch, generator=generator) < self.clean_first_prob

        last = draws[:, -1:]
        per_chunk = torch.stack(
            [
                draws[:, :1].expand(batch, n),  # same
                draws.sort(dim=1).values,  # increasing
                torch.cat([torch.minimum(self.anchor_max_sigma * uniforms[:, :-1], last), last], 1),
                torch.cat([torch.zeros_like(draws[:, :-1]), last], 1),  # clean_context
                # first_chunk: a free draw, then the sorted rest, never below it
                torch.cat([draws[:, :1], draws[:, 1:].sort(dim=1).values], 1).cummax(dim=1).values,
            ]
        )[pattern, torch.arange(batch)]  # (B, n)
        context_weight = torch.ones(len(PATTERNS), n)
        context_weight[PATTERNS.index("anchor"), :-1] = self.anchor_context_weight

        index = torch.repeat_interleave(torch.arange(n), torch.tensor(chunks))  # frame -> chunk
        sigma = per_chunk[:, index].float()
        weight = context_weight[pattern][:, index]
        sigma[clean_first, 0] = 0.0
        weight = torch.where(sigma > 0, weight, torch.zeros_like(weight))
        return sigma, weight, pattern


@dataclass
class ConditionDropout:
    """Drop the conditions so the network also learns the unconditional branches of guidance.

    text: probability per sample. A dropped sample's text mask is all False, which the network treats
        exactly like the sampler's zero-length unconditional text (cross-attention then adds only its
        output bias in both cases), so tensor shapes stay fixed within a batch.
    camera: probability per training step for the whole global batch: camera and Plücker inputs are
        None (the sampler's `Guidance(drop_camera=True)` branch). The network has no per-sample
        camera mask, and zero or identity poses are not "no camera" (the Plücker embedder has a bias,
        identity poses are a real still camera), so the only exact way is per batch. The coin is drawn
        from the step's shared generator, so every rank drops together and the global batch is the
        same as in one process.
    """

    text: float = 0.1
    camera: float = 0.0

    def __post_init__(self) -> None:
        for name in ("text", "camera"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"dropout.{name} must be a probability in [0, 1], got {getattr(self, name)}")

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, bool]:
        """(drop_text (B,) bool, drop_camera bool). Draw order: B text coins, then one camera coin."""
        drop_text = torch.rand(batch, generator=generator) < self.text
        drop_camera = bool(torch.rand(1, generator=generator).item() < self.camera)
        return drop_text, drop_camera


__all__ = ["PATTERNS", "ConditionDropout", "TimestepSampler"]
