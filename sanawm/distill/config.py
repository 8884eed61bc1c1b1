"""Distillation configuration: one typed config for both stages, YAML presets, dotted overrides.

The same machinery as training (`sanawm.training.config`): a preset name (`sanawm/distill/presets/NAME.yaml`)
or a YAML file, `base:` inheritance, `--section.key=value` overrides checked against the annotations.

    cfg = load_distill_config("distill-ode-smoke", ["--run.steps=3"])

Sections: `teacher` (the frozen multi-step model and its sampler), `student` (initial weights and the
few-step timesteps), `stream` (chunk layout and KV window shared by teacher sampling and student rollouts),
`data` (where conditions come from: first-frame latents, cameras, text; `sanawm.training.config.DataSection`),
`ode` (the trajectory dataset), `dmd` (self-forcing with distribution matching), `optim` (the student's
AdamW; `dmd.critic_optim` is the fake score's), `camera_gap` (the camera-sensitivity probe in the logs),
`run` (`sanawm.training.config.RunSection`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from ..training.config import (
    DataSection,
    OptimSection,
    RunSection,
    build_typed,
    config_to_dict,
    raw_config,
)

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
STUDENT_TIMESTEPS = (1000.0, 960.0, 889.0, 727.0, 0.0)


@dataclass
class TeacherSection:
    """The frozen multi-step teacher.

    path: a pipeline folder (its transformer/), a diffusers `SanaWMTransformer3DModel` folder, or a
        sanawm training run / checkpoint folder.
    weights: 'ema' or 'model' weights of a sanawm checkpoint (diffusers folders have one set).
    steps, shift: its flow-matching Euler sampler (`EulerSchedule`), used for the ODE trajectories.
    guidance: classifier-free guidance of those trajectories (1: none). The DMD real score uses
        `dmd.real_guidance`. The unconditional branch drops the text and/or the camera.
    sampler: 'chunked' (chunk by chunk with the streaming state, as `generate --mode streaming`; a
        chunk-causal teacher such as the default model) or 'bidirectional' (all frames at once; the
        release's stage-1 teacher).
    dtype: storage of the frozen copy; 'bf16' halves its memory (CUDA only; the CPU computes in fp32).
    """

    path: str | None = None
    weights: Literal["model", "ema"] = "ema"
    steps: int = 40
    shift: float = 3.0
    guidance: float = 1.0
    guidance_drops_text: bool = True
    guidance_drops_camera: bool = False
    sampler: Literal["chunked", "bidirectional"] = "chunked"
    dtype: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.shift <= 0:
            raise ValueError(
                f"teacher.steps must be ≥ 1 and teacher.shift > 0, got {self.steps}, {self.shift}"
            )


@dataclass
class StudentSection:
    """The few-step student.

    init_from: initial weights (same forms as teacher.path); None: the teacher's. The DMD stage starts
        from the ODE run (`--student.init_from=runs/ode`).
    timesteps: the student's sampler, predict x₀ and re-noise (`FewStepSchedule`); SPEC 5: 1000, 960,
        889, 727, 0.
    """

    init_from: str | None = None
    init_weights: Literal["model", "ema"] = "ema"
    timesteps: tuple[float, ...] = STUDENT_TIMESTEPS

    def __post_init__(self) -> None:
        from ..sampling import FewStepSchedule

        FewStepSchedule(tuple(self.timesteps)).sigmas()  # validates: decreasing from ≤ 1000 to 0


@dataclass
class StreamSection:
    """Chunk-by-chunk generation, as `GenerationConfig` has it: `first_chunk` latent frames (the
    image frame included), then `chunk` at a time; softmax blocks keep the sink + `kv_window` chunks."""

    chunk: int = 3
    first_chunk: int = 4
    kv_window: int | None = 2

    def __post_init__(self) -> None:
        if self.chunk < 1 or self.first_chunk < 1 or (self.kv_window is not None and self.kv_window < 0):
            raise ValueError("stream.chunk and stream.first_chunk must be ≥ 1, stream.kv_window ≥ 0 or null")

    def chunks(self, latent_frames: int) -> tuple[int, ...]:
        from ..sampling import chunk_layout

        return chunk_layout(latent_frames, self.chunk, self.first_chunk)


@dataclass
class OdeSection:
    """ODE regression: the teacher's trajectories, stored once, then regressed onto.

    dataset: the trajectory folder (None: `run.out_dir`/trajectories); built (resumably) when
        incomplete, from `samples` conditions of `data` (sample k: data item k mod its length, noise
        seeded by (run.seed, k)).
    shard_size: samples per shard file; batch_size: samples the teacher runs at once.
    """

    dataset: str | None = None
    samples: int = 64
    shard_size: int = 16
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.samples < 1 or self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("ode.samples, ode.shard_size and ode.batch_size must be ≥ 1")


@dataclass
class DmdSection:
    """Self-forcing with distribution matching distillation (DMD).

    real_guidance: guidance of the frozen real score (the teacher); the fake score is conditional only.
    critic_steps: fake-score updates per student update (Self-Forcing's dfake_gen_update_ratio): every
        step updates the critic, every `critic_steps`-th step also the student.
    min_sigma, max_sigma, sigma_shift: the noise level of the score evaluations, σ = shift(U(min, max)).
    score_mode: how the scores see the noised rollout: 'chunk_causal' (with `stream`'s chunks; the default
        model's teacher) or 'bidirectional' (the release's stage-1 teacher).
    curriculum: [[from_step, latent_frames], ...]: rollout length by step, short to long (the release
        43 → 121); data.latent_frames must cover the longest.
    grad_frames: only chunks ending in the last `grad_frames` latent frames take gradients (earlier
        chunks run their exit step without grad; memory); None: every chunk.
    critic_optim: the fake score's AdamW.
    """

    real_guidance: float = 3.0
    critic_steps: int = 5
    min_sigma: float = 0.02
    max_sigma: float = 0.98
    sigma_shift: float = 3.0
    score_mode: Literal["chunk_causal", "bidirectional"] = "chunk_causal"
    curriculum: tuple[tuple[int, int], ...] = ((0, 21),)
    grad_frames: int | None = None
    critic_optim: OptimSection = field(default_factory=OptimSection)

    def __post_init__(self) -> None:
        if self.critic_steps < 1:
            raise ValueError(f"dmd.critic_steps must be ≥ 1, got {self.critic_steps}")
        if not 0 <= self.min_sigma < self.max_sigma <= 1 or self.sigma_shift <= 0:
            raise ValueError("dmd needs 0 ≤ min_sigma < max_sigma ≤ 1 and sigma_shift > 0")
        steps = [s for s, _ in self.curriculum]
        if not self.curriculum or steps[0] != 0 or steps != sorted(set(steps)):
            raise ValueError(
                f"dmd.curriculum {[list(c) for c in self.curriculum]} must start at step 0 with increasing "
                "steps, e.g. [[0, 21], [2000, 41]]"
            )
        if min(t for _, t in self.curriculum) < 1:
            raise ValueError("dmd.curriculum latent frames must be ≥ 1")
        if self.grad_frames is not None and self.grad_frames < 1:
            raise ValueError(f"dmd.grad_frames must be ≥ 1 or null, got {self.grad_frames}")

    def latent_frames(self, step: int) -> int:
        return [t for s, t in self.curriculum if s <= step][-1]


@dataclass
class CameraGapSection:
    """The camera-sensitivity probe (`sanawm.distill.diagnostics.CameraProbe`): on a fixed batch of
    `samples` clips (ODE: the first trajectories, the teacher's samples as clean context; DMD: the first
    data items at the curriculum's first length), the relative change of the student's x₀ predictions
    when its camera is removed / swapped, next to the teacher's, in metrics.jsonl at step 0 and every
    `every` steps (0: off). A few dozen small network calls per probe."""

    every: int = 25
    samples: int = 4

    def __post_init__(self) -> None:
        if self.every < 0 or self.samples < 1:
            raise ValueError(
                f"camera_gap.every must be ≥ 0 (0: off) and camera_gap.samples ≥ 1, got {self.every}, "
                f"{self.samples}"
            )


@dataclass
class DistillConfig:
    teacher: TeacherSection = field(default_factory=TeacherSection)
    student: StudentSection = field(default_factory=StudentSection)
    stream: StreamSection = field(default_factory=StreamSection)
    data: DataSection = field(default_factory=DataSection)
    ode: OdeSection = field(default_factory=OdeSection)
    dmd: DmdSection = field(default_factory=DmdSection)
    optim: OptimSection = field(default_factory=OptimSection)
    camera_gap: CameraGapSection = field(default_factory=CameraGapSection)
    run: RunSection = field(default_factory=RunSection)


def list_distill_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_distill_config(source: str | Path | Mapping, overrides: Sequence[str] = ()) -> DistillConfig:
    """A distillation preset name, a YAML path or a mapping, then `--key=value` overrides."""
    cfg = build_typed(DistillConfig, raw_config(source, overrides, PRESETS_DIR, "distillation"))
    if cfg.teacher.path is None:
        raise ValueError(
            "teacher.path is not set: pass --teacher.path=PIPELINE_FOLDER (e.g. sanawm/assets/default-model) "
            "or a diffusers transformer / sanawm run folder"
        )
    return cfg


def dump_distill_config(cfg: DistillConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


__all__ = [
    "CameraGapSection",
    "DistillConfig",
    "DmdSection",
    "OdeSection",
    "StreamSection",
    "StudentSection",
    "TeacherSection",
    "dump_distill_config",
    "list_distill_presets",
    "load_distill_config",
]
