"""`sanawm model-info PRESET`: a JSON summary of a network, built on the meta device (no memory)."""

from __future__ import annotations

import torch

from ..model.config import PRESETS, get_preset
from ..model.transformer import SanaWMTransformer


def add_parser(sub) -> None:
    p = sub.add_parser("model-info", help="parameter counts and block layout of a model preset")
    p.add_argument("preset", help=f"one of: {', '.join(sorted(PRESETS))}")
    p.set_defaults(run=run)


def summarize(preset: str) -> dict:
    cfg = get_preset(preset)
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    groups = {name: sum(p.numel() for p in params) for name, params in model.parameter_groups().items()}
    kinds = cfg.block_kinds
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameters_by_part": {
            "main_path": groups["main"],
            "camera_branch_ucpe": groups["camera"],
            "plucker_branch": groups["plucker"],
            "unused_kept_for_checkpoint_compatibility": groups["compat"],
        },
        "blocks": len(kinds),
        "block_layout": "".join("S" if k == "softmax" else "G" for k in kinds),
        "gdn_blocks": [i for i, k in enumerate(kinds) if k == "gdn"],
        "softmax_blocks": [i for i, k in enumerate(kinds) if k == "softmax"],
        "hidden_size": cfg.hidden_size,
        "heads": cfg.num_heads,
        "head_dim": cfg.linear_head_dim,
        "latent_channels": cfg.in_channels,
        "text_channels": cfg.caption_channels,
        "patch_size": list(cfg.patch_size),
        "config": cfg.to_dict(),
    }


def run(args) -> dict:
    return summarize(args.preset)
