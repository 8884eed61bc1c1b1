"""An int8 pipeline folder (`sanawm.model.int8`) loads through WorldModelPipeline.from_pretrained and
generates latents close to the unquantised folder's for the same seed."""

import json

import numpy as np
import torch
from PIL import Image

from sanawm.model import SanaWMTransformer, get_preset, save_diffusers
from sanawm.model.int8 import WEIGHTS, file_is_int8, quantize_folder
from sanawm.pipelines import WorldModelPipeline
from sanawm.vae import SmallVAEConfig, SmallVideoVAE
from tests.model.helpers import randomize

# Measured: 0.013 relative L2 distance of the latents (sana-wm-tiny, random weights at scale 0.1,
# 17 frames, 4 streaming steps); the bound leaves about 2x room.
LATENT_REL_TOL = 0.03


def _pipeline_folder(root):
    torch.manual_seed(0)
    save_diffusers(randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1), root / "transformer")
    SmallVideoVAE(SmallVAEConfig(latent_channels=8, channels=(8, 8, 8, 8))).save_pretrained(root / "vae")
    generation = {"height": 64, "width": 64, "mode": "streaming", "steps": 4, "shift": 3.0, "guidance": 1.0}
    (root / "generation.json").write_text(json.dumps({**generation, "chunk": 3, "first_chunk": 2}))
    return root


def _latents(folder):
    pipe = WorldModelPipeline.from_pretrained(folder)
    cfg = pipe.generation_config(num_frames=17, seed=3)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return pipe.generate(image, actions="w-20", config=cfg).latents


def test_int8_pipeline_folder_generates_close_to_the_unquantised_one(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain = _pipeline_folder(tmp_path / "plain")
        int8 = _pipeline_folder(tmp_path / "int8")
        sizes = quantize_folder(int8)
        assert list(sizes) == [f"transformer/{WEIGHTS}", "vae/model.safetensors"]  # our VAE's file too
        assert all(file_is_int8(int8 / f) for f in sizes)
        a, b = _latents(plain), _latents(int8)
    finally:
        torch.set_num_threads(threads)
    assert torch.isfinite(b).all() and not torch.equal(a, b)  # the int8 weights were used
    rel = ((a - b).norm() / a.norm()).item()
    assert rel < LATENT_REL_TOL, rel
