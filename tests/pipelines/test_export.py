"""`sanawm export`: a training run + its VAE -> a pipeline folder that generates, with its defaults."""

import json

import pytest
import torch
from safetensors.torch import load_file

from sanawm.cli.main import main
from sanawm.pipelines import GenerationConfig, WorldModelPipeline
from sanawm.training.config import load_config
from sanawm.training.trainer import Trainer
from sanawm.vae import SmallVAEConfig, SmallVideoVAE
from tests.training import FAST


@pytest.fixture(scope="module")
def run_and_vae(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg = load_config("tiny-smoke", [*FAST, f"--run.out_dir={root / 'run'}", "--run.steps=1"])
    Trainer(cfg).train()
    torch.manual_seed(0)
    SmallVideoVAE(SmallVAEConfig(latent_channels=8, channels=(8, 8, 8, 8))).save_pretrained(root / "vae")
    return root


def test_export_writes_a_pipeline_that_generates_with_its_defaults(run_and_vae, tmp_path, capsys):
    out = tmp_path / "model"
    args = ["export", str(run_and_vae / "run"), f"--vae={run_and_vae / 'vae'}", f"--out={out}", "--steps=3"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    generation = json.loads((out / "generation.json").read_text())
    assert generation["mode"] == "streaming" and generation["steps"] == 3 and generation["shift"] == 10.0
    assert (generation["height"], generation["width"]) == (64, 64)
    weights = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in weights.values() if v.is_floating_point()} <= {torch.bfloat16, torch.float32}
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["shift"] == 10.0

    pipe = WorldModelPipeline.from_pretrained(out)
    cfg = GenerationConfig(num_frames=9, height=64, width=64, mode="streaming", steps=2, guidance=1.0)
    image = torch.rand(64, 64, 3).mul(255).byte().numpy()
    from PIL import Image

    result = pipe.generate(Image.fromarray(image), actions="w-9", config=cfg)
    assert result.frames.shape == (9, 64, 64, 3)

    assert main(args) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_export_int8_halves_the_transformer_and_still_generates(run_and_vae, tmp_path, capsys):
    base = ["export", str(run_and_vae / "run"), f"--vae={run_and_vae / 'vae'}", "--steps=2"]
    assert main([*base, f"--out={tmp_path / 'bf16'}"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*base, f"--out={tmp_path / 'int8'}", "--int8"]) == 0
    quant = json.loads(capsys.readouterr().out)
    key = "transformer/diffusion_pytorch_model.safetensors"
    assert plain["weights"][key]["int8"] is False and quant["weights"][key]["int8"] is True
    assert quant["weights"][key]["megabytes"] < 0.7 * plain["weights"][key]["megabytes"]
    assert quant["megabytes"] < plain["megabytes"]
    from sanawm.model.int8 import file_is_int8

    vae_file = "vae/model.safetensors"  # our VAE's convolutions too (this tiny one's are under MIN_NUMEL)
    assert file_is_int8(tmp_path / "int8" / vae_file) and not file_is_int8(tmp_path / "bf16" / vae_file)
    pipe = WorldModelPipeline.from_pretrained(tmp_path / "int8")
    ref = WorldModelPipeline.from_pretrained(tmp_path / "bf16")
    assert list(pipe.transformer.state_dict()) == list(ref.transformer.state_dict())
    cfg = GenerationConfig(num_frames=9, height=64, width=64, mode="streaming", steps=2, guidance=1.0)
    from PIL import Image

    image = Image.fromarray(torch.rand(64, 64, 3).mul(255).byte().numpy())
    assert pipe.generate(image, actions="w-9", config=cfg).frames.shape == (9, 64, 64, 3)

    from sanawm.model.int8 import quantize_folder

    with pytest.raises(ValueError, match="int8 already"):
        quantize_folder(tmp_path / "int8")


def test_export_refuses_a_vae_of_other_latent_channels(run_and_vae, tmp_path, capsys):
    SmallVideoVAE(SmallVAEConfig(latent_channels=4, channels=(8, 8, 8, 8))).save_pretrained(tmp_path / "vae4")
    args = ["export", str(run_and_vae / "run"), f"--vae={tmp_path / 'vae4'}", f"--out={tmp_path / 'm'}"]
    assert main(args) == 2
    assert "8-channel" in capsys.readouterr().err and not (tmp_path / "m").exists()
