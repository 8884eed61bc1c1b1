"""Tiny random components of diffusers' SanaWMLTX2Refiner (about 60k parameters), built in memory."""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMLTX2Refiner, SanaWMLTX2RefinerTransformer3DModel
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GemmaTokenizerFast

CHANNELS = 8
TEXT_LENGTH = 8
WORDS = ["<pad>", "<eos>", "<bos>", "<unk>", "a", "street", "at", "night", "red", "car", "forest", "walk"]


def tiny_tokenizer() -> GemmaTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return GemmaTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def tiny_refiner_pipeline(seed: int = 0) -> SanaWMLTX2Refiner:
    """Random tiny Gemma-3 (2 layers, width 16), connectors and LTX-2 refiner transformer (2 layers,
    2 heads of 8)."""
    torch.manual_seed(seed)
    config = Gemma3Config(
        text_config=dict(
            vocab_size=len(WORDS),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            sliding_window=8,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
        ),
        mm_tokens_per_image=4,
    )
    text_encoder = Gemma3ForConditionalGeneration(config).eval()
    connectors = LTX2TextConnectors(
        caption_channels=16,
        text_proj_in_factor=3,  # 2 layers + the embedding layer
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=4,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=4,
    ).eval()
    transformer = SanaWMLTX2RefinerTransformer3DModel(
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=16,
        num_layers=2,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=1,
        audio_attention_head_dim=8,
        audio_cross_attention_dim=8,
    ).eval()
    pipe = SanaWMLTX2Refiner(
        transformer=transformer,
        connectors=connectors,
        tokenizer=tiny_tokenizer(),
        text_encoder=text_encoder,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        text_max_sequence_length=TEXT_LENGTH,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
