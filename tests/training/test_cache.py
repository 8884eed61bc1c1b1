"""The latent cache: encode once, read back exactly, resume, and train from it."""

import json

import numpy as np
import pytest
import torch

from sanawm.cameras import latent_camera_inputs
from sanawm.data import ClipDataset
from sanawm.text import NullTextEncoder
from sanawm.training.cache import LatentCache, cache_latents
from sanawm.training.config import load_config
from sanawm.training.trainer import Trainer
from sanawm.vae import SMALL_VAE_PRESETS, SmallVideoVAE

from . import FAST, read_metrics
from .test_trainer import write_clips

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(tmp_path):
    write_clips(tmp_path / "clips", n=3, frames=40, size=80)  # 80 px: resized and cropped to 64
    torch.manual_seed(0)
    vae = SmallVideoVAE(SMALL_VAE_PRESETS["tiny"]).eval()
    vae.set_latent_stats(torch.randn(8) * 0.1, torch.rand(8) + 0.5)
    vae.save_pretrained(tmp_path / "vae")
    return tmp_path, vae


class CaptionHash(NullTextEncoder):
    """A deterministic 32-d, 3-token text encoder for tests."""

    def encode(self, prompts):
        g = torch.Generator().manual_seed(sum(map(ord, prompts[0])))
        return torch.randn(len(prompts), 3, self.dim, generator=g), torch.tensor([[True, True, False]])


def test_cache_reads_back_what_direct_encoding_gives(tiny):
    tmp, vae = tiny
    out = tmp / "cache"

    def run_cache():
        cache_latents(
            tmp / "clips",
            out,
            vae,
            CaptionHash(32),
            num_frames=33,
            size=(64, 64),
            shard_size=2,
            windows_per_clip=2,
            seed=5,
        )

    run_cache()
    ds = LatentCache(out)
    assert len(ds) == 6 and len(list(out.glob("shard_*.safetensors"))) == 3
    assert ds.latent_shape == (8, 5, 2, 2)
    for k in (0, 3, 5):
        item = ds[k]
        clip = ClipDataset(tmp / "clips", 33, size=(64, 64), seed=5 + k % 2)[k // 2]
        with torch.no_grad():
            direct = vae.encode(clip["video"].permute(1, 0, 2, 3)[None])[0]
        torch.testing.assert_close(item["latents"], direct, rtol=0, atol=0)
        cam = latent_camera_inputs(
            clip["c2w"].double().numpy(), clip["intrinsics"].double().numpy(), (64, 64)
        )
        assert torch.equal(item["camera"], cam.camera) and torch.equal(item["plucker"], cam.plucker)
        text, mask = CaptionHash(32).encode([clip["caption"]])
        assert torch.equal(item["text"], text[0]) and torch.equal(item["text_mask"], mask[0])
        assert item["caption"] == clip["caption"] and item["clip"] == clip["clip"]
    # the intrinsics are those of the resized / cropped window: 80 -> 64 scales fx by 0.8
    assert ds[0]["camera"][0, 16].item() == pytest.approx(0.9 * 80 * 0.8 * 2 / 64)

    # resumable: a lost shard is rewritten, the others are skipped (same bytes)
    first = (out / "shard_00000.safetensors").read_bytes()
    (out / "shard_00001.safetensors").unlink()
    (out / "index.json").unlink()
    run_cache()
    assert (out / "shard_00000.safetensors").read_bytes() == first
    assert torch.equal(LatentCache(out)[3]["latents"], ds[3]["latents"])
    assert json.loads((out / "index.json").read_text())["vae_hash"] == ds.index["vae_hash"]
    with pytest.raises(ValueError, match="other settings"):
        cache_latents(tmp / "clips", out, vae, num_frames=33, size=(64, 64), shard_size=2)


def test_trainer_runs_from_the_cache(tiny):
    tmp, _ = tiny
    cache_latents(tmp / "clips", tmp / "cache", tmp / "vae", num_frames=33, size=(64, 64))
    args = [
        *FAST,
        "--data.source=latents",
        f"--data.path={tmp / 'cache'}",
        f"--run.out_dir={tmp / 'run'}",
        "--run.steps=3",
        "--run.log_every=1",
    ]
    summary = Trainer(load_config("tiny-smoke", args)).train()
    assert summary["step"] == 3 and all(np.isfinite(r["loss"]) for r in read_metrics(tmp / "run"))
    with pytest.raises(ValueError, match="--data.latent_frames=5"):
        Trainer(load_config("tiny-smoke", [*args[:-3], "--data.latent_frames=3", f"--run.out_dir={tmp}/x"]))


def test_cache_latents_command(tiny, capsys):
    from sanawm.cli.main import main

    tmp, _ = tiny
    args = ["cache-latents", str(tmp / "clips"), f"--vae={tmp / 'vae'}", "--frames=17", "--size=64,64"]
    assert main([*args, f"--out={tmp / 'c'}", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == 3 and out["latent_shape"] == [8, 3, 2, 2]
    assert main([*args[:-1], "--size=60,64", f"--out={tmp / 'd'}", "--no-progress"]) == 2


def test_workers_and_batches_store_the_same_cache(tiny):
    """Decoding in worker processes and encoding several windows per VAE call changes only speed: the
    same samples in the same order, latents equal up to batched-convolution rounding."""
    tmp, vae = tiny
    kw = dict(num_frames=17, size=(64, 64), shard_size=4, windows_per_clip=2, seed=1)
    cache_latents(tmp / "clips", tmp / "serial", vae, **kw)
    cache_latents(tmp / "clips", tmp / "fast", vae, workers=2, batch_size=3, **kw)
    a, b = LatentCache(tmp / "serial"), LatentCache(tmp / "fast")
    assert len(a) == len(b) == 6
    for k in range(6):
        x, y = a[k], b[k]
        assert x["clip"] == y["clip"] and torch.equal(x["camera"], y["camera"])
        torch.testing.assert_close(y["latents"], x["latents"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        cache_latents(tmp / "clips", tmp / "bad", vae, batch_size=0, **kw)
