"""Model configuration: one typed dataclass and a named preset for every size.

The field names follow the public diffusers port (`SanaWMTransformer3DModel`) where a field has a
counterpart there, so `ModelConfig.from_diffusers_config` is a plain renaming and a checkpoint of
that port loads with the same state-dict keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a SANA-WM generator network.

    Attributes:
        in_channels: latent channels of the video VAE (LTX-2: 128).
        num_layers: number of DiT blocks.
        hidden_size: model width C.
        num_attention_heads: heads of the text cross-attention (head dim C / heads).
        linear_head_dim: head dim of the self-attention (GDN and softmax blocks, camera branch).
        softmax_every_n: block i is softmax attention when (i + 1) % n == 0 (0: never).
        patch_size: (t, h, w) latent patch; t must be 1.
        mlp_ratio: Mix-FFN hidden width = C * mlp_ratio.
        t_kernel_size: temporal conv kernel of the Mix-FFN.
        conv_kernel_size: causal half-width + 1 of the K short conv (4: taps t-3..t, mirrored to t+3
            in bidirectional mode).
        caption_channels: width of the text encoder's embeddings (Gemma-2-2B: 2304).
        plucker_channels: 6 Plücker numbers x raw frames per latent frame (48 for an 8x VAE).
        plucker_blocks: how many leading blocks receive the Plücker injection (-1: all).
        rope_theta, rope_max_len: 3D RoPE table (per axis).
        gdn_eps: epsilon of the GDN normaliser division.
        qk_norm, cross_norm, y_norm: RMSNorms on self-attn q/k, cross-attn q/k, and text embeddings.
    """

    in_channels: int = 128
    num_layers: int = 20
    hidden_size: int = 2240
    num_attention_heads: int = 20
    linear_head_dim: int = 112
    softmax_every_n: int = 4
    patch_size: tuple[int, int, int] = (1, 1, 1)
    mlp_ratio: float = 3.0
    t_kernel_size: int = 3
    conv_kernel_size: int = 4
    caption_channels: int = 2304
    plucker_channels: int = 48
    plucker_blocks: int = 20
    rope_theta: float = 10000.0
    rope_max_len: int = 1024
    gdn_eps: float = 1e-8
    qk_norm: bool = True
    cross_norm: bool = True
    y_norm: bool = True
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        c, d = self.hidden_size, self.linear_head_dim
        if c % d:
            raise ValueError(f"hidden_size {c} must be a multiple of linear_head_dim {d}")
        if c % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {c} must be a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if d % 8:
            raise ValueError(
                f"linear_head_dim {d} must be a multiple of 8: half of it is split into 4-channel UCPE groups"
            )
        if self.patch_size[0] != 1:
            raise ValueError(f"temporal patch size must be 1, got patch_size={self.patch_size}")
        if self.t_kernel_size != 3:
            raise ValueError("only t_kernel_size=3 is supported (one frame of context each side)")

    @property
    def num_heads(self) -> int:
        """Heads of the self-attention (GDN / softmax / camera branch)."""
        return self.hidden_size // self.linear_head_dim

    @property
    def block_kinds(self) -> tuple[str, ...]:
        """'gdn' or 'softmax' for each block."""
        n = self.softmax_every_n
        return tuple("softmax" if n > 0 and (i + 1) % n == 0 else "gdn" for i in range(self.num_layers))

    def has_plucker(self, block_index: int) -> bool:
        return self.plucker_blocks < 0 or block_index < self.plucker_blocks

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    # ---- the diffusers port -------------------------------------------------------------------------

    _DIFFUSERS_RENAMES = {
        "chunk_plucker_channels": "plucker_channels",
        "chunk_plucker_post_attn_blocks": "plucker_blocks",
    }
    _DIFFUSERS_REQUIRED = {
        "ffn_type": "GLUMBConvTemp",
        "k_conv_only": True,
        "pos_embed_type": "wan_rope",
        "cam_attn_compress": 1,
        "use_chunk_plucker_post_attn": True,
        "use_pe": True,
        "pred_sigma": False,
        "mlp_acts": ["silu", "silu", None],
    }

    @classmethod
    def from_diffusers_config(cls, cfg: dict[str, Any]) -> ModelConfig:
        """Build from a `SanaWMTransformer3DModel` config.json dict; refuses variants we don't implement."""
        for key, want in cls._DIFFUSERS_REQUIRED.items():
            if key in cfg and _normalise(cfg[key]) != _normalise(want):
                raise ValueError(
                    f"diffusers config has {key}={cfg[key]!r}; sanawm implements only {key}={want!r}"
                )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in cfg.items():
            key = cls._DIFFUSERS_RENAMES.get(key, key)
            if key in known:
                kwargs[key] = tuple(value) if key == "patch_size" else value
        return cls(**kwargs)

    def to_diffusers_config(self) -> dict[str, Any]:
        out = {k: v for k, v in self.to_dict().items() if k not in ("plucker_channels", "plucker_blocks")}
        for k in ("rope_theta", "rope_max_len", "gdn_eps", "norm_eps"):
            out.pop(k)
        out["chunk_plucker_channels"] = self.plucker_channels
        out["chunk_plucker_post_attn_blocks"] = self.plucker_blocks
        return out


def _normalise(v: Any) -> Any:
    return json.loads(json.dumps(v))


PRESETS: dict[str, ModelConfig] = {
    # The released stage-1 model: exactly diffusers' default SanaWMTransformer3DModel config.
    "sana-wm-2.6b": ModelConfig(),
    # The small model we train on procedural worlds and ship as the default (a few M parameters).
    "sana-wm-small": ModelConfig(
        in_channels=32,  # the "medium" SmallVideoVAE's latent channels
        num_layers=8,
        hidden_size=256,
        num_attention_heads=4,
        linear_head_dim=32,
        caption_channels=256,
        plucker_blocks=-1,
        mlp_ratio=2.5,
    ),
    # Test-sized models (well under 5M parameters).
    "sana-wm-tiny": ModelConfig(
        in_channels=8,
        num_layers=4,
        hidden_size=64,
        num_attention_heads=4,
        linear_head_dim=32,
        caption_channels=32,
        plucker_blocks=-1,
        mlp_ratio=2.0,
    ),
    "sana-wm-micro": ModelConfig(
        in_channels=4,
        num_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        linear_head_dim=16,
        softmax_every_n=2,
        caption_channels=16,
        plucker_blocks=-1,
        mlp_ratio=2.0,
    ),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None


__all__ = ["ModelConfig", "PRESETS", "get_preset"]
