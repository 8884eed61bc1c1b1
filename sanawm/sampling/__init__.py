"""Samplers: turn the network's velocity predictions into latents."""

from .flow import (
    ChunkSession,
    Conditions,
    EulerSchedule,
    FewStepSchedule,
    Guidance,
    chunk_layout,
    sample_bidirectional,
    sample_chunked,
)

__all__ = [
    "ChunkSession",
    "Conditions",
    "EulerSchedule",
    "FewStepSchedule",
    "Guidance",
    "chunk_layout",
    "sample_bidirectional",
    "sample_chunked",
]
