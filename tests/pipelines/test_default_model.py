"""The default model shipped in the package: it is there, small, loads offline and follows its defaults."""

import json
import shutil

import torch

from sanawm.pipelines import WorldModelPipeline
from sanawm.pipelines.world_model import DEFAULT_MODEL, EXAMPLE_ACTIONS, EXAMPLE_IMAGE
from sanawm.vae import SmallVideoVAE


def test_shipped_weights_are_small_and_load_offline():
    files = [f for f in DEFAULT_MODEL.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 64e6
    assert {f.name for f in files} >= {"diffusion_pytorch_model.safetensors", "model.safetensors"}
    assert EXAMPLE_IMAGE.is_file()

    pipe = WorldModelPipeline.from_pretrained()  # no path: the shipped folder; nothing is downloaded
    assert isinstance(pipe.vae, SmallVideoVAE) and pipe.vae.latent_channels == 128
    assert pipe.transformer.cfg.in_channels == 128
    cfg = pipe.generation_config()
    assert (cfg.height, cfg.width, cfg.mode, cfg.seconds) == (256, 256, "streaming", 60.0)
    shipped = json.loads((DEFAULT_MODEL / "generation.json").read_text())
    assert pipe.scheduler_config["shift"] == shipped["shift"] == cfg.shift
    assert pipe.generation_config(seconds=2, steps=1).steps == 1  # overrides win, None keeps the default

    # A short generation: frames come out, the camera path is the example's.
    short = pipe.generation_config(seconds=1, steps=1)
    result = pipe.generate(EXAMPLE_IMAGE, actions=EXAMPLE_ACTIONS, config=short)
    assert result.frames.shape == (17, 256, 256, 3)
    assert torch.isfinite(result.latents).all()
    assert 5 < result.frames.std() < 120  # an image, not a constant


def test_shipped_networks_are_int8_and_load_as_float():
    """Every shipped network (the teacher, and a student/ or refiner/ where present) is stored int8 and
    loads into float weights; a shipped student is used by default, the teacher with student=False."""
    from sanawm.model.int8 import file_is_int8

    folders = [DEFAULT_MODEL / "transformer"]
    folders += [DEFAULT_MODEL / sub / "transformer" for sub in ("student", "refiner")]
    for folder in folders:
        if folder.is_dir():
            assert file_is_int8(folder / "diffusion_pytorch_model.safetensors"), folder
    pipe = WorldModelPipeline.from_pretrained()
    assert all(p.dtype == torch.float32 for p in pipe.transformer.parameters())
    assert pipe.is_student == (DEFAULT_MODEL / "student").is_dir()
    assert (pipe.refiner is not None) == (DEFAULT_MODEL / "refiner").is_dir()
    teacher = WorldModelPipeline.from_pretrained(student=False)
    assert not teacher.is_student and teacher.generation_config().timesteps is None


def test_refine_without_a_shipped_refiner_names_the_folder(tmp_path, capsys, monkeypatch):
    """`sanawm generate --refine` with no folder uses the model's own refiner/; when the default model has
    none (a copy of the shipped one without refiner/ stands in), the error names the default folder (not
    None) and how to make one, before any work."""
    import sanawm.pipelines.world_model as world_model
    from sanawm.cli.main import main

    bare = tmp_path / "default-model"
    shutil.copytree(DEFAULT_MODEL, bare, ignore=shutil.ignore_patterns("refiner"))
    monkeypatch.setattr(world_model, "DEFAULT_MODEL", bare)
    out = tmp_path / "x.mp4"
    assert main(["generate", "--refine", "--seconds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and "sanawm refine export" in err and "None" not in err
    assert not out.exists()
