"""The small refiner's training chain on a tiny pipeline: pairs equal the pipeline's own streaming
generation, the truncated-σ loss formula, train + resume, export -> from_pretrained -> generate --refine."""

import json

import numpy as np
import pytest
import torch

from sanawm.cli.main import main
from sanawm.model.int8 import file_is_int8
from sanawm.pipelines import WorldModelPipeline
from sanawm.refine.pairs import PairDataset, build_pairs, clip_seed
from sanawm.refine.train import (
    load_refiner_config,
    refiner_chunks,
    refiner_loss,
    target_block,
    truncated_flow_inputs,
)

from ..model.helpers import tiny_network
from .test_world_model import _image


def test_truncated_flow_targets_by_hand():
    stage1, target, eps = (
        torch.full((1, 1, 1, 1, 1), 2.0),
        torch.full((1, 1, 1, 1, 1), 1.0),
        torch.zeros(1, 1, 1, 1, 1),
    )
    x_tau, v = truncated_flow_inputs(stage1, target, eps, 0.5, torch.tensor([0.25]))
    # x_σs = 0.5·2 + 0.5·0 = 1.0, v* = (1.0 − 1.0)/0.5 = 0; with ε = 4: x_σs = 3, v* = 4, x_τ = 1 + 0.25·4 = 2
    assert v.item() == 0.0 and x_tau.item() == 1.0
    x_tau, v = truncated_flow_inputs(stage1, target, eps + 4, 0.5, torch.tensor([0.25]))
    assert v.item() == 4.0 and x_tau.item() == 2.0
    x_s, _ = truncated_flow_inputs(stage1, target, eps + 4, 0.5, torch.tensor([0.5]))
    assert x_s.item() == 3.0  # τ = σ_s gives the re-noised stage-1 latents
    assert refiner_chunks(9, 3, 1) == (1, 3, 3, 2) and refiner_chunks(7, 3, 1) == (1, 3, 3)


def test_pairs_equal_streaming_generation(reference_pipeline_folder, tmp_path):
    pipe = WorldModelPipeline.from_pretrained(reference_pipeline_folder)
    cfg = pipe.generation_config(mode="streaming", num_frames=33, height=64, width=64, steps=2, guidance=1.0)
    pipe.generation_defaults.update(steps=2, guidance=1.0, chunk=3, first_chunk=4, kv_window=2)
    items, expected = [], []
    for k, actions in enumerate(("w-32", "l-32")):
        seed = clip_seed(9, k)
        path = pipe.camera_path(cfg, actions=actions, image_size=(_image().height, _image().width))
        pixels, path = pipe.prepare_image(_image(), path, cfg)
        camera, plucker = pipe.camera_inputs(path)
        text, mask = pipe.text_encoder.encode([""])
        first = pipe.vae.encode(pixels[:, :, None])
        out = pipe.generate(
            _image(), "", actions=actions, config=cfg.__class__(**{**cfg.__dict__, "seed": seed})
        )
        expected.append(out.latents[0])
        latents = torch.cat([first, torch.randn(1, first.shape[1], 4, *first.shape[-2:])], 2)
        items.append(
            {
                "latents": latents[0],
                "camera": camera[0],
                "plucker": plucker[0],
                "text": text[0],
                "text_mask": mask[0],
            }
        )
    folder = build_pairs(
        tmp_path / "pairs",
        pipe,
        items,
        samples=2,
        latent_frames=5,
        seed=9,
        settings={},
        shard_size=2,
        batch_size=2,
    )
    ds = PairDataset(folder)
    for k in range(2):
        assert torch.allclose(ds[k]["stage1"], expected[k], atol=1e-5)
        assert torch.equal(ds[k]["latents"], items[k]["latents"])
    assert ds[0]["stage1"].shape == (expected[0].shape)


def test_train_resume_export_generate(reference_pipeline_folder, tmp_path, capsys):
    run = tmp_path / "run"
    common = [
        "refiner-smoke",
        f"--stage1.path={reference_pipeline_folder}",
        "--data.source=synthetic",
        f"--run.out_dir={run}",
        "--data.size=[128,128]",
        "--data.latent_frames=5",
    ]
    assert main(["refine", "pairs", *common]) == 0
    assert (run / "pairs" / "index.json").is_file()
    assert main(["refine", "train", *common, "--run.steps=1"]) == 0  # reuses the pairs
    assert main(["refine", "pairs", *common]) == 0  # finished pairs, a run with checkpoints: nothing to do
    assert main(["refine", "train", *common, "--run.steps=2", "--resume"]) == 0
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    capsys.readouterr()
    out = tmp_path / "pipe"
    assert (
        main(
            [
                "refine",
                "export",
                str(run),
                "--pipeline",
                str(reference_pipeline_folder),
                "--out",
                str(out),
                "--dtype",
                "fp32",
            ]
        )
        == 0
    )
    plain = json.loads(capsys.readouterr().out)
    pipe = WorldModelPipeline.from_pretrained(out)
    assert pipe.refiner is not None and pipe.refiner.schedule.block_size == 3
    # --int8: the refiner (and the stage-1 copy) as the shipped model stores them; same weights to int8 error
    out8 = tmp_path / "pipe8"
    export = ["refine", "export", str(run), "--pipeline", str(reference_pipeline_folder), "--dtype", "fp32"]
    assert main([*export, "--out", str(out8), "--int8"]) == 0
    assert json.loads(capsys.readouterr().out)["refiner_megabytes"] < plain["refiner_megabytes"]
    weights = "transformer/diffusion_pytorch_model.safetensors"
    assert file_is_int8(out8 / "refiner" / weights) and file_is_int8(out8 / weights)
    assert not file_is_int8(reference_pipeline_folder / weights)  # the source folder is untouched
    exact, int8 = pipe.refiner.transformer.state_dict(), WorldModelPipeline.from_pretrained(out8).refiner
    for name, value in int8.transformer.state_dict().items():
        norm = torch.linalg.vector_norm
        assert norm(value - exact[name]) <= 0.02 * norm(exact[name]) + 1e-6, name
    image = tmp_path / "first.png"
    _image().save(image)
    args = [
        "generate",
        "--model",
        str(out),
        "--image",
        str(image),
        "--actions",
        "w-32",
        "--seconds",
        "2",
        "--height",
        "64",
        "--width",
        "64",
        "--steps",
        "2",
        "--guidance",
        "1",
        "--mode",
        "streaming",
        "--out",
        str(tmp_path / "v.mp4"),
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--refine",
    ]
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["refined"] is True
    args[2] = str(reference_pipeline_folder)
    assert main(args) == 2
    assert "has no refiner/" in capsys.readouterr().err


def _recorded_batch(seed: int, T: int = 8):
    """A random batch of 2 clips × T frames (3 channels, 2 × 2) and a zero predictor that records its inputs
    (x, t, chunks, kv_window) into the returned dict."""
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.randn(2, 3, T, 2, 2, generator=g) for k in ("latents", "stage1", "noise")}
    batch.update(text=torch.zeros(2, 0, 4), text_mask=torch.zeros(2, 0, dtype=torch.bool))
    seen = {}

    def model(x, t, *args, chunks, kv_window):
        seen.update(x=x, t=t, chunks=chunks, kv_window=kv_window)
        return torch.zeros_like(x)

    return batch, model, seen


def test_refiner_loss_targets_one_block_with_clean_context():
    """With a recording model that predicts zeros, the loss is mean(v*²) over the target block only, the
    inputs are clean targets outside that block and x_τ in it, and the timesteps 1000 τ only there."""
    T = 8
    batch, model, seen = _recorded_batch(0, T)
    block, tau = torch.tensor([0, 2]), torch.tensor([0.5, 0.25])
    chunks = refiner_chunks(T, 3, 1)  # (1, 3, 3, 1): block 0 = frames 1..3, block 2 = frame 7
    loss = refiner_loss(model, batch, block, tau, sigma_s=0.8, chunks=chunks, kv_window=2)
    x_tau, v = truncated_flow_inputs(batch["stage1"], batch["latents"], batch["noise"], 0.8, tau)
    want = (v[0, :, 1:4].square().mean() * 3 + v[1, :, 7:8].square().mean()) / 4
    assert torch.allclose(loss, want, atol=1e-6)
    assert torch.equal(seen["x"][0, :, 1:4], x_tau[0, :, 1:4]) and torch.equal(
        seen["x"][1, :, 7], x_tau[1, :, 7]
    )
    assert torch.equal(seen["x"][0, :, 4:], batch["latents"][0, :, 4:])  # clean GT elsewhere
    assert torch.equal(seen["x"][1, :, :7], batch["latents"][1, :, :7])
    assert seen["t"].tolist() == [[0, 500, 500, 500, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 250]]
    assert seen["chunks"] == (1, 3, 3, 1) and seen["kv_window"] == 2


def test_refiner_loss_stage1_context_replaces_the_history_only():
    """stage1_context: a chosen clip's frames between the sink and its target block are the stage-1
    rollout, its sink and target block unchanged; an unchosen clip keeps the true history; the loss is the
    same formula. An out-of-range share is refused at configuration."""
    T = 8
    batch, model, seen = _recorded_batch(1, T)
    block, tau = torch.tensor([2, 2]), torch.tensor([0.5, 0.25])
    chunks = refiner_chunks(T, 3, 1)  # (1, 3, 3, 1): block 2 = frame 7, history = frames 1..6
    kw = dict(sigma_s=0.8, chunks=chunks, kv_window=2)
    plain = refiner_loss(model, batch, block, tau, **kw)
    mixed = refiner_loss(model, batch, block, tau, **kw, stage1_context=torch.tensor([True, False]))
    x_tau, _ = truncated_flow_inputs(batch["stage1"], batch["latents"], batch["noise"], 0.8, tau)
    x = seen["x"]
    assert torch.equal(x[0, :, 0], batch["latents"][0, :, 0])  # the sink stays the truth
    assert torch.equal(x[0, :, 1:7], batch["stage1"][0, :, 1:7])  # the history is stage 1's
    assert torch.equal(x[1, :, :7], batch["latents"][1, :, :7])  # not chosen: the true history
    assert torch.equal(x[:, :, 7], x_tau[:, :, 7])
    torch.testing.assert_close(mixed, plain)  # a zero predictor: the loss does not read the inputs
    with pytest.raises(ValueError, match="stage1_context is a share"):
        load_refiner_config("refiner-smoke", ["--stage1.path=x", "--refiner.stage1_context=1.5"])


def test_refiner_loss_cut_after_the_target_block_equals_the_whole_clip():
    """A real chunk-causal network: the loss on a clip cut after its (shared) target block equals the loss
    computed on the whole clip, per block, and the network sees only the frames up to that block."""
    T = 8
    model, (lat, _, text, _, camera, plucker) = tiny_network(latent_frames=T)
    model.eval()
    g = torch.Generator().manual_seed(3)
    B = 2
    batch = {
        "latents": lat.expand(B, -1, -1, -1, -1).clone(),
        "stage1": lat.expand(B, -1, -1, -1, -1) + 0.3 * torch.randn(B, *lat.shape[1:], generator=g),
        "noise": torch.randn(B, *lat.shape[1:], generator=g),
        "text": text.expand(B, -1, -1),
        "text_mask": torch.ones(B, text.shape[1], dtype=torch.bool),
        "camera": camera.expand(B, -1, -1),
        "plucker": plucker.expand(B, -1, -1, -1, -1),
    }
    chunks, tau = refiner_chunks(T, 3, 1), torch.tensor([0.6, 0.3])  # (1, 3, 3, 1)
    seen = []

    def recording(x, *args, **kw):
        seen.append(x.shape[2])
        return model(x, *args, **kw)

    for j, frames in ((0, range(1, 4)), (1, range(4, 7))):
        block = torch.full((B,), j)
        with torch.no_grad():
            cut = refiner_loss(recording, batch, block, tau, sigma_s=0.9, chunks=chunks, kv_window=2)
            x_tau, v = truncated_flow_inputs(batch["stage1"], batch["latents"], batch["noise"], 0.9, tau)
            inputs, t = batch["latents"].clone(), torch.zeros(B, T)
            inputs[:, :, frames], t[:, frames] = x_tau[:, :, frames], tau[:, None] * 1000
            keys = ("text", "text_mask", "camera", "plucker")
            pred = model(inputs, t, *(batch[k] for k in keys), chunks=chunks, kv_window=2)
        want = (pred - v)[:, :, frames].square().mean()
        assert seen[-1] == frames[-1] + 1  # the frames after the block were cut
        torch.testing.assert_close(cut, want, rtol=1e-5, atol=1e-6)


def test_target_blocks_follow_the_bias():
    """bias 0 draws blocks uniformly, bias 1 in proportion to j + 1, a uniform share mixes the two; a
    negative bias and a share outside [0, 1] are refused."""
    g = torch.Generator().manual_seed(0)
    for bias, want in ((0.0, [0.25] * 4), (1.0, [0.1, 0.2, 0.3, 0.4])):
        draws = torch.cat([target_block(4, bias, g) for _ in range(8000)])
        freq = torch.bincount(draws, minlength=4).double() / len(draws)
        assert torch.allclose(freq, torch.tensor(want, dtype=torch.float64), atol=0.02), (bias, freq)
    # a uniform share: 0.5 / 4 + 0.5 * (j + 1) / 10
    draws = torch.cat([target_block(4, 1.0, g, uniform=0.5) for _ in range(8000)])
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.175, 0.225, 0.275, 0.325], dtype=torch.float64), atol=0.02)
    with pytest.raises(ValueError, match="target_bias must be >= 0"):
        load_refiner_config("refiner-smoke", ["--stage1.path=x", "--refiner.target_bias=-1"])
    with pytest.raises(ValueError, match="target_uniform is a share"):
        load_refiner_config("refiner-smoke", ["--stage1.path=x", "--refiner.target_uniform=2"])
