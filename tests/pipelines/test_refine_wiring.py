"""Stage 2 wired into generation: the refiner runs chunk by chunk right behind stage 1 (streaming) or on
the whole clip (other modes), keeps the conditioning frame, and `sanawm generate --refine` uses it."""

import json

import pytest
import torch

from sanawm.cli.main import main
from sanawm.pipelines import WorldModelPipeline
from sanawm.pipelines.world_model import GenerationConfig
from tests.refine.test_ltx2_refiner import ours
from tests.refine.tiny import WORDS, tiny_refiner_pipeline

from .test_world_model import _image

PROMPT = "a red car at night"
assert all(w in WORDS for w in PROMPT.split())


@pytest.fixture(scope="module")
def refiner_pipe():
    return tiny_refiner_pipeline()


def _cfg(mode):
    return GenerationConfig(num_frames=33, height=64, width=64, steps=2, guidance=1.0, seed=5, mode=mode)


@pytest.mark.parametrize("mode", ["streaming", "chunk-causal"])
def test_refined_generation_equals_stage1_then_refiner(reference_pipeline_folder, refiner_pipe, mode):
    pipe = WorldModelPipeline.from_pretrained(reference_pipeline_folder)
    refiner = ours(refiner_pipe)
    cfg = _cfg(mode)
    stage1 = pipe.generate(_image(), PROMPT, actions="w-16,l-16", config=cfg)
    refined = pipe.generate(_image(), PROMPT, actions="w-16,l-16", config=cfg, refiner=refiner)
    expected = refiner.refine(
        stage1.latents, PROMPT, fps=cfg.fps, generator=torch.Generator().manual_seed(cfg.seed + 2)
    )
    assert refined.latents.shape == stage1.latents.shape
    assert torch.allclose(refined.latents, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(refined.latents[:, :, :1], stage1.latents[:, :, :1])  # the conditioning frame
    assert stage1.stage1_latents is None and torch.equal(refined.stage1_latents, stage1.latents)
    assert (refined.latents[:, :, 1:] - stage1.latents[:, :, 1:]).abs().max() > 1e-3  # it did refine
    assert refined.frames.shape == stage1.frames.shape


def test_refiner_in_another_latent_space_is_refused(refiner_pipe):
    pipe = WorldModelPipeline.from_pretrained()  # the shipped model: 128 latent channels, the refiner 8
    with pytest.raises(ValueError, match="8-channel latents but this model's are 128-channel"):
        pipe.generate(_image(), actions="w-8", config=_cfg("streaming"), refiner=ours(refiner_pipe))


def test_ltx2_refiner_with_another_vae_is_refused(reference_pipeline_folder, refiner_pipe):
    """Same width, another latent space: the LTX-2 refiner runs only behind an LTX-2 VAE's latents."""
    from sanawm.vae.small import SMALL_VAE_PRESETS, SmallVideoVAE

    pipe = WorldModelPipeline.from_pretrained(reference_pipeline_folder)
    pipe.vae = SmallVideoVAE(SMALL_VAE_PRESETS["tiny"])
    assert pipe.vae.latent_channels == pipe.transformer.cfg.in_channels  # the width check passes
    with pytest.raises(ValueError, match="LTX-2 VAE's latent space, but this model's VAE is SmallVideoVAE"):
        pipe.generate(_image(), actions="w-8", config=_cfg("streaming"), refiner=ours(refiner_pipe))


def test_cli_refine(reference_pipeline_folder, refiner_pipe, tmp_path, capsys):
    folder = tmp_path / "refiner"
    refiner_pipe.save_pretrained(folder)
    image = tmp_path / "first.png"
    _image().save(image)
    out = tmp_path / "refined.mp4"
    args = ["generate", "--model", str(reference_pipeline_folder), "--image", str(image)]
    args += ["--actions", "w-16,l-16", "--seconds", "2", "--height", "64", "--width", "64", "--steps", "2"]
    args += ["--guidance", "1", "--mode", "streaming", "--prompt", PROMPT, "--refine", str(folder)]
    args += ["--out", str(out), "--device", "cpu", "--dtype", "fp32"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["refined"] is True and out.is_file()
    assert main([*args[:-6], "--refine", str(tmp_path / "missing"), *args[-4:]]) == 2
    assert "no transformer/ subfolder" in capsys.readouterr().err
