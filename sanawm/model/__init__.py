"""The SANA-WM generator network."""

from .config import PRESETS, ModelConfig, get_preset
from .diffusers_compat import from_diffusers, save_diffusers
from .graphs import GraphedStreamStep
from .state import StreamState
from .transformer import SanaWMTransformer

__all__ = [
    "PRESETS",
    "GraphedStreamStep",
    "ModelConfig",
    "SanaWMTransformer",
    "StreamState",
    "from_diffusers",
    "get_preset",
    "save_diffusers",
]
