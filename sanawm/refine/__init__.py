"""Stage 2, the long-video refiner (SPEC section 5): re-noise stage-1 latents to σ_s = 0.909375 and
denoise them chunk-causally in 3 Euler steps, behind a clean sink frame with a bounded KV history.

- `base`: the interface (`BlockRefiner`, `RefinerSchedule`, `RefinerPrompt`) and the two drivers built
  on it, `refine_clip` (whole clip) and `RefinerStream` (chunk by chunk, constant memory); `ChunkRefiner`
  holds what the backends share.
- `ltx2`: the released backend, diffusers' LTX-2 refiner transformer under our chunk-causal loop.
- `lora`: LoRA fine-tuning of that backend (peft) with the truncated-σ objective; `load_lora` for inference.
- `small`: our own backend, the stage-1 network (`SanaWMTransformer`) fine-tuned as a refiner; `pairs`
  builds its training pairs, `train` trains it, `export` writes it into a pipeline folder's refiner/.
"""

from .base import (
    RELEASE_SIGMAS,
    BlockRefiner,
    ChunkRefiner,
    RefinerCameras,
    RefinerPrompt,
    RefinerSchedule,
    RefinerStream,
    refine_clip,
)
from .small import SmallRefiner, SmallRefinerState, small_schedule

# The LTX-2 backend imports diffusers (seconds on a CPU), which the small refiner never needs: loaded on
# first use, so `sanawm generate` with the shipped refiner does not pay for it.
_LAZY = {"LTX2Refiner": ".ltx2", "LTX2RefinerState": ".ltx2", "LTX2PromptEncoder": ".ltx2_text"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RELEASE_SIGMAS",
    "BlockRefiner",
    "ChunkRefiner",
    "LTX2PromptEncoder",
    "LTX2Refiner",
    "LTX2RefinerState",
    "RefinerCameras",
    "RefinerPrompt",
    "RefinerSchedule",
    "RefinerStream",
    "SmallRefiner",
    "SmallRefinerState",
    "refine_clip",
    "small_schedule",
]
