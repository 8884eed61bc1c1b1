"""A complete tiny SANA-WM pipeline in diffusers format (random weights, every branch live), saved to a
temporary folder: tiny LTX-2 VAE, tiny Gemma-2 with a locally trained tokenizer, tiny transformer."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from diffusers import (  # noqa: E402
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    SanaWMPipeline,
    SanaWMTransformer3DModel,
)

from sanawm.model.config import ModelConfig  # noqa: E402
from tests.text.test_encoders import build_gemma, build_tokenizer  # noqa: E402
from tests.vae.test_ltx2 import TINY_LTX2  # noqa: E402

TEXT_DIM = 32


def build_reference_pipeline(seed: int = 0) -> SanaWMPipeline:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    text = build_gemma(tokenizer, TEXT_DIM)
    vae = AutoencoderKLLTX2Video(**TINY_LTX2).eval()
    with torch.no_grad():
        vae.latents_mean.copy_(torch.randn(TINY_LTX2["latent_channels"]) * 0.3)
        vae.latents_std.copy_(torch.rand(TINY_LTX2["latent_channels"]) + 0.5)
    cfg = ModelConfig(
        in_channels=TINY_LTX2["latent_channels"],
        num_layers=4,
        hidden_size=48,
        num_attention_heads=4,
        linear_head_dim=24,
        caption_channels=TEXT_DIM,
        mlp_ratio=2.0,
        plucker_blocks=4,
    )
    transformer = SanaWMTransformer3DModel(**cfg.to_diffusers_config()).eval()
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in name else 0.0))
            if name.endswith("A_log"):
                p.copy_(torch.randn_like(p) * 0.5 - 1.0)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return SanaWMPipeline(
        tokenizer=tokenizer, text_encoder=text, vae=vae, transformer=transformer, scheduler=scheduler
    )


@pytest.fixture(scope="session")
def reference_pipeline_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sana_wm_pipeline")
    build_reference_pipeline().save_pretrained(folder)
    return folder
