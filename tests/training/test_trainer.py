"""Trainer pieces: activation checkpointing, initial weights (diffusers folders and our checkpoints),
export, frozen parameters, the LR schedule and the data sources."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sanawm.model import SanaWMTransformer, from_diffusers, get_preset, save_diffusers
from sanawm.training.checkpoint import export_diffusers, load_weights
from sanawm.training.config import load_config
from sanawm.training.data import SyntheticClips, build_dataset
from sanawm.training.trainer import Trainer, lr_factor
from tests.model.helpers import randomize

from . import FAST, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def config(out, *extra, steps=2):
    return load_config(
        "tiny-smoke", [*FAST, f"--run.out_dir={out}", f"--run.steps={steps}", "--run.log_every=1", *extra]
    )


def test_activation_checkpointing_changes_nothing_but_memory(tmp_path):
    Trainer(config(tmp_path / "plain")).train()
    trainer = Trainer(config(tmp_path / "ckpt", "--run.activation_checkpointing=true"))
    assert "state_dict" not in str(type(trainer.model.blocks[0]))  # same modules, same keys
    trainer.train()
    a, b = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "ckpt")
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-5)


def test_init_from_diffusers_folder_and_from_our_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")))
    save_diffusers(source, tmp_path / "transformer")
    trainer = Trainer(config(tmp_path / "a", f"--model.init_from={tmp_path / 'transformer'}"))
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())

    # architecture from the weights when model.preset is null
    cfg = config(tmp_path / "b", "--model.preset=null", f"--model.init_from={tmp_path / 'transformer'}")
    assert cfg.model_config() == source.cfg

    trainer.train()  # 2 steps, checkpoint with EMA
    ema = load_weights(tmp_path / "a", "ema")
    again = Trainer(config(tmp_path / "c", f"--model.init_from={tmp_path / 'a'}", "--model.init_weights=ema"))
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in ema.items())

    export_diffusers(tmp_path / "a", tmp_path / "exported", which="ema")
    back = from_diffusers(tmp_path / "exported")
    assert all(torch.equal(back.state_dict()[k], v) for k, v in ema.items())


def test_init_from_a_mismatched_model_names_the_fix(tmp_path):
    save_diffusers(SanaWMTransformer(get_preset("sana-wm-micro")), tmp_path / "micro")
    with pytest.raises(ValueError, match="model.preset=null"):
        Trainer(config(tmp_path / "x", f"--model.init_from={tmp_path / 'micro'}"))


def test_unused_and_cameraless_parameters_stay_frozen(tmp_path):
    trainer = Trainer(config(tmp_path / "run", "--data.camera=false", steps=3))
    groups = trainer.model.parameter_groups()
    before = {k: [p.detach().clone() for p in groups[k]] for k in ("compat", "camera", "plucker", "main")}
    trainer.train()
    for k in ("compat", "camera", "plucker"):
        assert all(torch.equal(p, q) for p, q in zip(groups[k], before[k], strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(groups["main"], before["main"], strict=True))


def test_lr_schedule_warmup_then_cosine():
    optim = load_config("tiny-smoke", ["--optim.warmup_steps=4", "--optim.min_lr_ratio=0.1"]).optim
    f = [lr_factor(s, optim, 14) for s in range(15)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and f[9] == pytest.approx(0.55) and f[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))


def test_synthetic_source_is_deterministic_and_shaped_like_training_data():
    ds = SyntheticClips(8, 5, (64, 96), 6, 32, seed=3)
    a, b = ds[7], SyntheticClips(8, 5, (64, 96), 6, 32, seed=3)[7]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["latents"], ds[8]["latents"])
    assert a["latents"].shape == (8, 5, 2, 3) and a["text"].shape == (6, 32) and a["text_mask"].any()
    assert a["camera"].shape == (5, 20) and a["plucker"].shape == (48, 5, 2, 3)


def write_clips(root, n=2, frames=36, size=64):
    from sanawm.cameras import Trajectory
    from sanawm.data import write_clip, write_manifest

    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(frames)
        y, x = np.mgrid[0:size, 0:size]
        video = np.stack(
            [128 + 60 * np.sin((x + 2 * k + 10 * i) / 7)[..., None] + 0 * y[..., None] for k in t]
        )
        video = np.repeat(video, 3, axis=-1).round().clip(0, 255).astype(np.uint8)
        c2w = np.tile(np.eye(4), (frames, 1, 1))
        c2w[:, 2, 3] = np.linspace(0, rng.uniform(0.5, 1.5), frames)
        traj = Trajectory(
            c2w=c2w, intrinsics=[0.9 * size, 0.9 * size, size / 2, size / 2], image_size=(size, size), fps=16
        )
        write_clip(Path(root) / f"clip{i}", video, traj, caption=f"clip {i}")
    write_manifest(root)


def test_clips_source_encodes_video_with_the_vae_and_trains(tmp_path):
    from sanawm.vae import SMALL_VAE_PRESETS, SmallVideoVAE

    write_clips(tmp_path / "clips")
    torch.manual_seed(0)
    SmallVideoVAE(SMALL_VAE_PRESETS["tiny"]).save_pretrained(tmp_path / "vae")  # 8 latent channels
    args = ["--data.source=clips", f"--data.path={tmp_path / 'clips'}", f"--data.vae={tmp_path / 'vae'}"]
    summary = Trainer(config(tmp_path / "run", *args)).train()
    assert summary["step"] == 2 and all(np.isfinite(r["loss"]) for r in read_metrics(tmp_path / "run"))
    with pytest.raises(ValueError, match="needs --data.vae"):
        Trainer(config(tmp_path / "x", *args[:2]))
    with pytest.raises(ValueError, match="needs --data.path"):
        Trainer(config(tmp_path / "y", "--data.source=clips"))


def test_latent_cache_source_says_what_is_missing(tmp_path):
    cfg = load_config("tiny-smoke", ["--data.source=latents"])
    with pytest.raises(ValueError, match="needs --data.path"):
        build_dataset(cfg.data, cfg.model_config(), 0)
    cfg = load_config("tiny-smoke", ["--data.source=latents", f"--data.path={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="cache-latents"):
        build_dataset(cfg.data, cfg.model_config(), 0)


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    out = Trainer(config(tmp_path / "a", "--run.time_limit_minutes=1e-9", steps=50)).train()
    assert out["stopped_at_time_limit"] and out["step"] == 0
    assert Path(out["checkpoint"]).name == "step_00000000"
    done = Trainer(config(tmp_path / "b", steps=2)).train()
    assert not done["stopped_at_time_limit"] and done["step"] == 2
    with pytest.raises(ValueError, match="time_limit_minutes"):
        config(tmp_path / "c", "--run.time_limit_minutes=0")
