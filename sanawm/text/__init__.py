"""Text encoders for the DiT's cross-attention: Gemma-2 from a local folder (SANA-WM's prompt handling)
and a null encoder for text-free use."""

from .encoders import SANA_WM_SYSTEM_PROMPT, Gemma2TextEncoder, NullTextEncoder, TextEncoder

__all__ = ["SANA_WM_SYSTEM_PROMPT", "Gemma2TextEncoder", "NullTextEncoder", "TextEncoder"]
