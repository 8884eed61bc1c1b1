"""Pipelines: glue the network, samplers, VAE and text encoder, and own the I/O."""

from .world_model import GenerationConfig, GenerationResult, WorldModelPipeline

__all__ = ["GenerationConfig", "GenerationResult", "WorldModelPipeline"]
