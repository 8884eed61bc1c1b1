"""Our small refiner (the stage-1 network as a stage-2 backend): streaming equals whole-clip refinement,
the sink is kept, camera inputs reach the network, and a refiner folder round-trips."""

import json

import pytest
import torch

from sanawm.model.config import ModelConfig
from sanawm.model.diffusers_compat import save_diffusers
from sanawm.model.transformer import SanaWMTransformer
from sanawm.refine import RefinerCameras, RefinerPrompt, SmallRefiner, small_schedule
from tests.model.helpers import camera_inputs, randomize

T, HW = 8, (4, 4)


def tiny_network(seed: int = 0) -> SanaWMTransformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        in_channels=8,
        num_layers=4,
        hidden_size=48,
        num_attention_heads=4,
        linear_head_dim=24,
        caption_channels=16,
        mlp_ratio=2.0,
        plucker_blocks=4,
        softmax_every_n=2,
    )
    return randomize(SanaWMTransformer(cfg), seed=seed).eval()


@pytest.fixture(scope="module")
def refiner():
    return SmallRefiner(tiny_network())


def _inputs():
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(1, 8, T, *HW, generator=g)
    camera, plucker = camera_inputs(T, HW)
    cams = RefinerCameras(camera, plucker)
    prompt = RefinerPrompt(torch.randn(1, 5, 16, generator=g), torch.ones(1, 5, dtype=torch.bool))
    return latents, cams, prompt


def test_streaming_equals_whole_clip(refiner):
    latents, cams, prompt = _inputs()
    whole = refiner.refine(latents, prompt, fps=16, generator=torch.Generator().manual_seed(7), cameras=cams)
    stream = refiner.stream(prompt, fps=16, generator=torch.Generator().manual_seed(7))
    pieces, start = [], 0
    for n in (4, 3, 1):  # stage-1 chunks of another layout than the refiner's blocks
        pieces.append(stream.push(latents[:, :, start : start + n], cams.frames(start, start + n)))
        start += n
    pieces.append(stream.finish())
    streamed = torch.cat(pieces, 2)
    assert streamed.shape == latents.shape
    assert (streamed - whole).abs().max() <= 1e-4
    assert torch.equal(whole[:, :, :1], latents[:, :, :1])  # the sink (the conditioning frame) is kept
    assert (whole[:, :, 1:] - latents[:, :, 1:]).abs().max() > 1e-3
    # the cameras reach the network: another path gives other latents
    other = RefinerCameras(cams.camera.flip(1), cams.plucker.flip(2)).frames(0, 4)
    moved = refiner.refine(
        latents[:, :, :4], prompt, fps=16, generator=torch.Generator().manual_seed(7), cameras=other
    )
    assert (moved[:, :, 1:] - whole[:, :, 1:4]).abs().max() > 1e-4


def test_block_matches_hand_written_loop(refiner):
    """One block by hand: x = (1-σs) z + σs ε, Euler over the sigmas with stream_step, then a σ=0 commit."""
    latents, cams, prompt = _inputs()
    net, sched = refiner.transformer, refiner.schedule
    out = refiner.refine(
        latents[:, :, :4],
        prompt,
        fps=16,
        generator=torch.Generator().manual_seed(1),
        cameras=cams.frames(0, 4),
    )
    text, mask = prompt.embeds, prompt.mask
    state = net.init_stream_state(2)
    c = cams.frames(0, 1)
    _, state = net.stream_step(latents[:, :, :1], torch.zeros(1, 1), text, state, mask, c.camera, c.plucker)
    eps = torch.randn(1, 8, 3, *HW, generator=torch.Generator().manual_seed(1))
    s = sched.sigmas
    x = (1 - s[0]) * latents[:, :, 1:4] + s[0] * eps
    c = cams.frames(1, 4)
    for a, b in zip(s[:-1], s[1:], strict=True):
        v, _ = net.stream_step(x, torch.full((1, 3), a * 1000), text, state, mask, c.camera, c.plucker)
        x = x + (b - a) * v
    assert torch.allclose(out[:, :, 1:], x, atol=1e-5)


def test_folder_round_trip_and_errors(refiner, tmp_path):
    save_diffusers(refiner.transformer, tmp_path / "transformer")
    (tmp_path / "refiner.json").write_text(
        json.dumps({"sigmas": [0.9, 0.5, 0.0], "block_size": 2, "sink_size": 1, "kv_window": 3})
    )
    loaded = SmallRefiner.from_folder(tmp_path)
    assert loaded.schedule == small_schedule((0.9, 0.5, 0.0), 2, 1, 3)
    assert loaded.schedule.kv_max_frames == 7 and loaded.kv_window == 3
    with pytest.raises(FileNotFoundError, match="refiner.json"):
        SmallRefiner.from_folder(tmp_path / "transformer")
    with pytest.raises(ValueError, match="no text encoder"):
        refiner.stream("a prompt", fps=16)
    latents, cams, prompt = _inputs()
    with pytest.raises(ValueError, match="takes 8"):
        refiner.refine(torch.zeros(1, 4, 5, *HW), prompt, fps=16)
    with pytest.raises(ValueError, match="cameras cover 8"):
        refiner.refine(latents[:, :, :5], prompt, fps=16, cameras=cams)
