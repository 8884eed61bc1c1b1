"""Pipelines: glue the network, samplers, VAE and text encoder, and own the I/O."""

from .session import WorldSession, WorldState, load_state, rollout_actions, save_state
from .world_model import GenerationConfig, GenerationResult, WorldModelPipeline

__all__ = [
    "GenerationConfig",
    "GenerationResult",
    "WorldModelPipeline",
    "WorldSession",
    "WorldState",
    "load_state",
    "rollout_actions",
    "save_state",
]
