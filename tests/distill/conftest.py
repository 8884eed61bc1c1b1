"""A tiny teacher pipeline folder (random `sana-wm-tiny` network with every branch live, a tiny
SmallVideoVAE, no text encoder) and the shared one-thread fixture."""

import json

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset, save_diffusers
from sanawm.vae import SmallVAEConfig, SmallVideoVAE
from tests.model.helpers import randomize
from tests.training.conftest import one_thread  # noqa: F401  (the fixture, shared)

GENERATION = {
    "height": 64,
    "width": 64,
    "mode": "streaming",
    "steps": 4,
    "shift": 3.0,
    "guidance": 1.0,
    "chunk": 3,
    "first_chunk": 2,
    "kv_window": 2,
}


@pytest.fixture(scope="session")
def teacher_pipeline(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    save_diffusers(randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1), out / "transformer")
    SmallVideoVAE(SmallVAEConfig(latent_channels=8, channels=(8, 8, 8, 8))).save_pretrained(out / "vae")
    (out / "scheduler").mkdir()
    scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    (out / "generation.json").write_text(json.dumps(GENERATION))
    return out
