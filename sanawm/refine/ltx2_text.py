"""Prompt encoding for the released LTX-2 refiner: Gemma-3 hidden states of every layer, the release's
masked mean/range packing, then diffusers' `LTX2TextConnectors` -> `RefinerPrompt` (B, L', D).

This is glue around library pieces (the tokenizer, the text encoder, the connectors and diffusers'
own packing helper); it matches `SanaWMLTX2Refiner._encode_prompt` token for token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
from diffusers.pipelines.sana_wm.refiner import _pack_text_embeds

from .base import RefinerPrompt

RELEASE_TEXT_MAX_SEQUENCE_LENGTH = 1024


class LTX2PromptEncoder:
    """tokenizer + Gemma-3 text encoder + LTX-2 text connectors -> `RefinerPrompt`."""

    def __init__(
        self,
        tokenizer,
        text_encoder: torch.nn.Module,
        connectors: LTX2TextConnectors,
        max_sequence_length: int = RELEASE_TEXT_MAX_SEQUENCE_LENGTH,
    ) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.eval()
        self.connectors = connectors.eval()
        self.max_sequence_length = int(max_sequence_length)

    @classmethod
    def from_folder(
        cls, folder: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16
    ) -> LTX2PromptEncoder:
        """Load from a diffusers `SanaWMLTX2Refiner` folder (connectors/, text_encoder/, tokenizer/)."""
        from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

        folder = Path(folder)
        missing = [sub for sub in ("connectors", "text_encoder", "tokenizer") if not (folder / sub).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"refiner folder {folder} lacks {', '.join(s + '/' for s in missing)}; it must hold the "
                "diffusers SanaWMLTX2Refiner layout (transformer/, connectors/, text_encoder/, tokenizer/), "
                "or load the refiner with text_encoder=False and pass prompt embeddings yourself"
            )
        max_len = RELEASE_TEXT_MAX_SEQUENCE_LENGTH
        index = folder / "model_index.json"
        if index.is_file():
            max_len = int(json.loads(index.read_text()).get("text_max_sequence_length", max_len))
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        text_encoder = Gemma3ForConditionalGeneration.from_pretrained(
            folder / "text_encoder", dtype=dtype, local_files_only=True
        ).to(device)
        connectors = LTX2TextConnectors.from_pretrained(
            folder / "connectors", torch_dtype=dtype, local_files_only=True
        ).to(device)
        return cls(tokenizer, text_encoder, connectors, max_sequence_length=max_len)

    @torch.no_grad()
    def encode(self, prompt: str | Sequence[str]) -> RefinerPrompt:
        """Prompt(s) -> connector embeddings (B, L', D) and mask (B, L'), in the connectors' dtype."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device = next(self.connectors.parameters()).device
        dtype = next(self.connectors.parameters()).dtype
        tokens = self.tokenizer(
            [p.strip() for p in prompts],
            padding="max_length",
            padding_side="left",
            max_length=self.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        input_ids = tokens.input_ids.to(device)
        mask = tokens.attention_mask.to(device)
        outputs = self.text_encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        hidden = torch.stack(outputs.hidden_states, dim=-1)  # (B, L, D_text, layers + 1)
        packed = _pack_text_embeds(hidden, mask.sum(dim=-1), device=device, padding_side="left").to(dtype)
        embeds, _, embeds_mask = self.connectors(packed, mask)
        return RefinerPrompt(embeds=embeds.to(dtype), mask=embeds_mask)
