"""Text encoders: `encode(prompts) -> (embeddings (B, L, D), mask (B, L) bool)`.

`Gemma2TextEncoder` reproduces diffusers' `SanaWMPipeline.encode_prompt` (Gemma-2, loaded from a LOCAL
folder; nothing is downloaded):

- conditional prompts: the system prompt (`SANA_WM_SYSTEM_PROMPT`, lines joined by "\\n") is prepended to
  the prompt; the text is tokenised (BOS added by the tokenizer) right-padded/truncated to
  len(tokenize(system prompt)) + max_length - 2 tokens; the last hidden state of the model is taken and
  then the BOS position plus the last max_length - 1 positions are kept (so the output is max_length
  long and mostly skips the system prompt's own tokens);
- negative / unconditional prompts (`encode_negative`): no prefix, right-padded/truncated to max_length.

`NullTextEncoder` gives zero-length embeddings (L = 0) for text-free models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

# The instruction prefix SANA-WM was trained with (diffusers' DEFAULT_CHI_PROMPT, verbatim).
SANA_WM_SYSTEM_PROMPT: tuple[str, ...] = (
    'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions '
    "suitable for image generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, "
    "and spatial relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round "
    "shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red "
    "flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring "
    "glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus "
    "passing by towering glass skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any "
    "additional commentary or evaluations:",
    "User Prompt: ",
)


class TextEncoder(ABC):
    """prompts -> (embeddings (B, L, D) float, mask (B, L) bool, True on real tokens)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width D."""

    @abstractmethod
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditional prompts."""

    def encode_negative(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Negative / unconditional prompts (e.g. [""] for classifier-free guidance)."""
        return self.encode(prompts)


def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a list of strings, got {type(prompts).__name__}: {prompts!r:.80}")
    if not prompts:
        raise ValueError("prompts is empty; pass at least one prompt ([''] for an empty one)")
    return list(prompts)


class NullTextEncoder(TextEncoder):
    """Zero-length embeddings: (B, 0, dim) and an empty (B, 0) mask."""

    def __init__(self, dim: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self._dim = dim
        self.dtype = dtype
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(_check_prompts(prompts))
        return (
            torch.zeros(n, 0, self._dim, dtype=self.dtype, device=self.device),
            torch.zeros(n, 0, dtype=torch.bool, device=self.device),
        )


def _resolve_gemma_folders(folder: str | Path) -> tuple[Path, Path]:
    """(model folder, tokenizer folder): `folder` itself, or `text_encoder/` + `tokenizer/` inside a
    SANA-WM diffusers folder."""
    import json

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Gemma-2 folder {root} does not exist; pass a local folder with config.json, the model "
            "weights and the tokenizer files (e.g. a download of google/gemma-2-2b-it), or a SANA-WM "
            "diffusers folder with text_encoder/ and tokenizer/ inside"
        )
    model_dir = root / "text_encoder" if (root / "text_encoder" / "config.json").is_file() else root
    tokenizer_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else model_dir
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"expected config.json with model_type 'gemma2' in {root} (or {root / 'text_encoder'})"
        )
    config = json.loads(config_file.read_text())
    model_type = config.get("model_type") or config.get("text_config", {}).get("model_type")
    if model_type != "gemma2":
        raise ValueError(
            f"expected config.json with model_type 'gemma2' in {model_dir}, found {model_type!r}"
        )
    if not any(tokenizer_dir.glob("tokenizer*")):
        raise FileNotFoundError(f"no tokenizer files (tokenizer.json / tokenizer.model) in {tokenizer_dir}")
    return model_dir, tokenizer_dir


class Gemma2TextEncoder(TextEncoder):
    """Gemma-2 last hidden states with SANA-WM's system-prompt prefix (see the module docstring)."""

    def __init__(
        self,
        tokenizer,
        model,
        *,
        max_length: int = 300,
        system_prompt: str | list[str] | tuple[str, ...] | None = None,
    ):
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (BOS + at least one token), got {max_length}")
        if system_prompt is None:
            system_prompt = SANA_WM_SYSTEM_PROMPT
        if not isinstance(system_prompt, str):
            system_prompt = "\n".join(system_prompt)
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.system_prompt = system_prompt

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        max_length: int = 300,
        system_prompt: str | list[str] | tuple[str, ...] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Gemma2TextEncoder:
        """Tokenizer (AutoTokenizer) + base Gemma-2 model (AutoModel: loads a Gemma2Model or the body of
        a Gemma2ForCausalLM checkpoint) from a local folder. `system_prompt=None` is SANA-WM's, "" none."""
        from transformers import AutoModel, AutoTokenizer

        model_dir, tokenizer_dir = _resolve_gemma_folders(folder)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
        model = model.to(device).eval().requires_grad_(False)
        return cls(tokenizer, model, max_length=max_length, system_prompt=system_prompt)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def _hidden_states(self, texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(
            texts,
            max_length=length,
            padding="max_length",
            padding_side="right",
            truncation=True,
            return_tensors="pt",
        ).to(self.device)
        out = self.model(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            output_hidden_states=True,
            return_dict=True,
        )
        return out.hidden_states[-1], tokens.attention_mask

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = _check_prompts(prompts)
        if not self.system_prompt:
            return self.encode_negative(prompts)
        length = len(self.tokenizer.encode(self.system_prompt)) + self.max_length - 2
        states, mask = self._hidden_states([self.system_prompt + p for p in prompts], length)
        keep = [0, *range(length - self.max_length + 1, length)]
        return states[:, keep], mask[:, keep].bool()

    def encode_negative(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = self._hidden_states(_check_prompts(prompts), self.max_length)
        return states, mask.bool()
