"""`sanawm vae train`: the loss falls, checkpoints resume exactly, the vae/ folder reloads."""

import json

import pytest
import torch

from sanawm.cli.main import main
from sanawm.vae import SmallVideoVAE

from . import read_metrics
from .test_trainer import write_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def vae_train(clips, out, steps, *extra):
    args = ["vae", "train", str(clips), "--preset=tiny", "--frames=9", "--size=64,64", f"--steps={steps}"]
    args += ["--batch-size=2", "--lr=3e-3", "--warmup-steps=0", "--log-every=1", "--ckpt-every=4"]
    return main([*args, "--stats-samples=2", "--device=cpu", "--no-progress", f"--out={out}", *extra])


def test_vae_train_lowers_the_loss_resumes_and_saves_a_loadable_vae(tmp_path, capsys):
    write_clips(tmp_path / "clips", n=2, frames=20)
    assert vae_train(tmp_path / "clips", tmp_path / "a", 12) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = read_metrics(tmp_path / "a")
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert sum(r["loss"] for r in rows[-3:]) < 0.9 * sum(r["loss"] for r in rows[:3])

    vae = SmallVideoVAE.from_pretrained(summary["vae"])
    assert not torch.equal(vae.latents_std, torch.ones(8))  # statistics estimated
    video = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        assert vae.decode(vae.encode(video)).shape == video.shape

    # interrupted at step 8 (checkpoint), resumed to 12: the same losses as the uninterrupted run
    assert vae_train(tmp_path / "clips", tmp_path / "b", 8) == 0
    assert vae_train(tmp_path / "clips", tmp_path / "b", 12, "--resume") == 0
    resumed = read_metrics(tmp_path / "b")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    for x, y in zip(rows, resumed, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
    assert vae_train(tmp_path / "clips", tmp_path / "b", 12) == 2  # refuses to overwrite without --resume


def test_cosine_schedule_time_limit_and_held_out_eval(tmp_path, capsys):
    from sanawm.training.vae_train import VAETrainConfig, lr_factor

    cfg = VAETrainConfig(dataset="x", steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        VAETrainConfig(dataset="x", schedule="linear")

    write_clips(tmp_path / "clips", n=2, frames=20)
    # a time limit that is over at once: a checkpoint at step 0 and a usable vae/ folder, no training
    assert vae_train(tmp_path / "clips", tmp_path / "t", 50, "--time-limit-minutes=1e-9") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 0
    assert (tmp_path / "t" / "checkpoints" / "step_00000000").is_dir()

    assert vae_train(tmp_path / "clips", tmp_path / "a", 6) == 0
    capsys.readouterr()
    report = tmp_path / "eval.json"
    args = ["vae", "eval", str(tmp_path / "a" / "vae"), str(tmp_path / "clips"), "--frames=9", "--size=64,64"]
    assert main([*args, "--device=cpu", f"--out={report}"]) == 0
    printed = json.loads(capsys.readouterr().out)
    full = json.loads(report.read_text())
    assert printed["clips"] == 2 and len(full["per_clip"]) == 2 and "per_clip" not in printed
    assert 0 < full["psnr"] < 60 and -1 <= full["ssim"] <= 1
    assert full["psnr"] == pytest.approx(sum(r["psnr"] for r in full["per_clip"]) / 2)
    # too long a window for these 20-frame clips: a clear error
    assert main([*args[:4], "--frames=33", "--size=64,64", "--device=cpu"]) == 2
    assert "33" in capsys.readouterr().err


def test_init_from_a_saved_vae(tmp_path, capsys):
    from sanawm.vae import SMALL_VAE_PRESETS

    write_clips(tmp_path / "clips", n=2, frames=20)
    torch.manual_seed(5)
    start = SmallVideoVAE(SMALL_VAE_PRESETS["tiny"])
    start.save_pretrained(tmp_path / "start")
    assert vae_train(tmp_path / "clips", tmp_path / "a", 0, f"--init-from={tmp_path / 'start'}") == 0
    capsys.readouterr()
    got = SmallVideoVAE.from_pretrained(tmp_path / "a" / "vae")
    for k, v in start.state_dict().items():
        if not k.startswith("latents_"):  # the statistics are re-estimated
            assert torch.equal(got.state_dict()[k], v), k
    SmallVideoVAE(SMALL_VAE_PRESETS["small"]).save_pretrained(tmp_path / "other")
    assert vae_train(tmp_path / "clips", tmp_path / "b", 1, f"--init-from={tmp_path / 'other'}") == 2
    assert "--preset" in capsys.readouterr().err


def test_decoder_only_keeps_the_latent_space(tmp_path, capsys):
    """--decoder-only: the decoder learns, the encoder and latent statistics (the world model's latent
    space) are bit-identical to the starting VAE's; it needs --init-from."""
    from sanawm.vae import SMALL_VAE_PRESETS

    write_clips(tmp_path / "clips", n=2, frames=20)
    torch.manual_seed(5)
    start = SmallVideoVAE(SMALL_VAE_PRESETS["tiny"])
    start.set_latent_stats(torch.full((8,), 0.25), torch.full((8,), 2.0))
    start.save_pretrained(tmp_path / "start")
    init = f"--init-from={tmp_path / 'start'}"
    assert vae_train(tmp_path / "clips", tmp_path / "a", 6, init, "--decoder-only") == 0
    capsys.readouterr()
    got = SmallVideoVAE.from_pretrained(tmp_path / "a" / "vae").state_dict()
    want = start.state_dict()
    kept = [k for k in want if not k.startswith("decoder.")]
    assert kept and all(torch.equal(got[k], want[k]) for k in kept)
    assert any(not torch.equal(got[k], want[k]) for k in want if k.startswith("decoder."))
    rows = read_metrics(tmp_path / "a")
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert vae_train(tmp_path / "clips", tmp_path / "b", 1, "--decoder-only") == 2
    assert "--init-from" in capsys.readouterr().err
