"""Samplers: turn the network's velocity predictions into latents."""

from .flow import (
    ChunkSession,
    Conditions,
    EulerSchedule,
    FewStepSchedule,
    Guidance,
    check_context_sigma,
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
    "check_context_sigma",
    "chunk_layout",
    "sample_bidirectional",
    "sample_chunked",
]
