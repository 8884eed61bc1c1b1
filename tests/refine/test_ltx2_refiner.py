"""The released refiner backend: our chunk-causal driver around diffusers' LTX-2 refiner transformer
against diffusers' own `SanaWMLTX2Refiner` loop (issue 11, acceptance 1) and streaming against the
whole clip (acceptance 2), on tiny random components."""

from __future__ import annotations

import pytest
import torch
from diffusers import SanaWMLTX2Refiner

from sanawm.refine import LTX2PromptEncoder, LTX2Refiner, RefinerSchedule

from .tiny import CHANNELS, TEXT_LENGTH, tiny_refiner_pipeline

PROMPT = "a red car at night"
FPS = 24.0


@pytest.fixture(scope="module")
def pipe() -> SanaWMLTX2Refiner:
    return tiny_refiner_pipeline()


def ours(pipe: SanaWMLTX2Refiner, schedule: RefinerSchedule | None = None) -> LTX2Refiner:
    encoder = LTX2PromptEncoder(
        pipe.tokenizer, pipe.text_encoder, pipe.connectors, max_sequence_length=TEXT_LENGTH
    )
    return LTX2Refiner(pipe.transformer, encoder, schedule)


def stage1_latents(frames: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(1, CHANNELS, frames, 4, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "schedule",
    [
        RefinerSchedule(),  # release: 3-frame blocks, 1 sink, 10 history frames
        RefinerSchedule(block_size=2, sink_size=2, kv_max_frames=5),
    ],
    ids=["release", "small-window"],
)
def test_driver_matches_diffusers_refiner(pipe: SanaWMLTX2Refiner, schedule: RefinerSchedule) -> None:
    # 18 frames: more blocks than the KV window holds (history trimmed) and a partial last block.
    z = stage1_latents(18)
    expected = pipe(
        z,
        PROMPT,
        fps=FPS,
        sink_size=schedule.sink_size,
        block_size=schedule.block_size,
        kv_max_frames=schedule.kv_max_frames,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    )
    got = ours(pipe, schedule).refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7))
    assert got.shape == z.shape
    # The comparison means something: refinement moved every non-sink frame, the sink stayed.
    sink = schedule.sink_size
    assert torch.equal(got[:, :, :sink], z[:, :, :sink])
    assert (got[:, :, sink:] - z[:, :, sink:]).abs().amax(dim=(0, 1, 3, 4)).min() > 0.1
    assert (got - expected).abs().max().item() <= 1e-4


def test_driver_matches_diffusers_refiner_in_bf16() -> None:
    """In bf16 the release's rounding (x0 cast to the model dtype before each Euler step) shows; we
    follow it."""
    pipe = tiny_refiner_pipeline().to(torch.bfloat16)
    z = stage1_latents(18)
    expected = pipe(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7), output_type="latent")
    got = ours(pipe).refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7))
    assert got.dtype == expected.dtype == torch.bfloat16
    assert (got.float() - expected.float()).abs().max().item() <= 1e-4


def test_prompt_and_noise_matter(pipe: SanaWMLTX2Refiner) -> None:
    refiner = ours(pipe)
    z = stage1_latents(7)
    base = refiner.refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7))
    other_prompt = refiner.refine(z, "a forest walk", fps=FPS, generator=torch.Generator().manual_seed(7))
    other_seed = refiner.refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(8))
    assert (base - other_prompt).abs().max() > 1e-3
    assert (base - other_seed).abs().max() > 1e-3


def test_later_blocks_see_the_history(pipe: SanaWMLTX2Refiner) -> None:
    """Changing stage-1 frame 2 (block 1) changes the refined block 2 (frames 4..6) through the KV
    history only: block 2's own inputs and noise are unchanged."""
    refiner = ours(pipe)
    z = stage1_latents(7)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    a = refiner.refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7))
    b = refiner.refine(z2, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(7))
    assert (a[:, :, 4:] - b[:, :, 4:]).abs().max() > 1e-4


@pytest.mark.parametrize(
    "chunks",
    [
        [4, 3, 3, 3, 3, 3, 1],  # stage 1's chunk-causal rhythm: first chunk 4, then 3
        [1, 1, 5, 2, 7, 4],  # arbitrary pieces, blocks straddling pushes
        [20],  # everything in one push
    ],
    ids=["stage1-rhythm", "ragged", "single-push"],
)
def test_streaming_equals_whole_clip(pipe: SanaWMLTX2Refiner, chunks: list[int]) -> None:
    refiner = ours(pipe)
    z = stage1_latents(sum(chunks))
    prompt = refiner.encode_prompt(PROMPT)
    whole = refiner.refine(z, prompt, fps=FPS, generator=torch.Generator().manual_seed(11))

    stream = refiner.stream(prompt, fps=FPS, generator=torch.Generator().manual_seed(11))
    pieces, start = [], 0
    for n in chunks:
        pieces.append(stream.push(z[:, :, start : start + n]))
        start += n
    pieces.append(stream.finish())
    streamed = torch.cat(pieces, dim=2)
    assert streamed.shape == z.shape
    assert (streamed - whole).abs().max().item() <= 1e-4


def test_stream_memory_is_bounded(pipe: SanaWMLTX2Refiner) -> None:
    """However long the video, the stream holds < block_size pending frames and a KV history of at most
    kv_max_frames - sink_size frames."""
    refiner = ours(pipe)
    schedule = refiner.schedule
    stream = refiner.stream(PROMPT, fps=FPS, generator=torch.Generator().manual_seed(0))
    tokens_per_frame = 4 * 6
    history_sizes = []
    for i in range(12):
        out = stream.push(stage1_latents(4 if i == 0 else 3, seed=i))
        assert out.shape[2] == (4 if i == 0 else 3)  # stage-1 chunks of 1 + 3k frames come back whole
        assert stream.pending.shape[2] < schedule.block_size
        layer = stream.state.kv_cache.get(0)
        history_sizes.append(layer.history_k.shape[1])
        assert layer.sink_k_pre.shape[1] == schedule.sink_size * tokens_per_frame
    assert max(history_sizes) == schedule.max_history_frames * tokens_per_frame
    assert history_sizes[-1] == history_sizes[-5]
    assert stream.finish().shape[2] == 0


def test_loads_from_a_local_folder(pipe: SanaWMLTX2Refiner, tmp_path) -> None:
    pipe.save_pretrained(tmp_path)
    refiner = LTX2Refiner.from_folder(tmp_path, dtype=torch.float32)
    assert refiner.prompt_encoder.max_sequence_length == TEXT_LENGTH
    # Compare with diffusers' pipeline loaded from the same folder: both then use the saved tokenizer.
    reloaded = SanaWMLTX2Refiner.from_pretrained(tmp_path, local_files_only=True)
    reloaded.set_progress_bar_config(disable=True)
    z = stage1_latents(8)
    expected = reloaded(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(5), output_type="latent")
    got = refiner.refine(z, PROMPT, fps=FPS, generator=torch.Generator().manual_seed(5))
    assert (got - expected).abs().max().item() <= 1e-4

    bare = LTX2Refiner.from_folder(tmp_path, dtype=torch.float32, text_encoder=False)
    with pytest.raises(ValueError, match="text_encoder=True"):
        bare.refine(z, PROMPT, fps=FPS)


def test_errors_name_the_fix(pipe: SanaWMLTX2Refiner, tmp_path) -> None:
    refiner = ours(pipe)
    with pytest.raises(FileNotFoundError, match="transformer/"):
        LTX2Refiner.from_folder(tmp_path)
    with pytest.raises(ValueError, match="channels"):
        refiner.refine(torch.randn(1, CHANNELS + 1, 4, 4, 4), PROMPT, fps=FPS)
    with pytest.raises(ValueError, match="at least one more frame"):
        refiner.refine(stage1_latents(1), PROMPT, fps=FPS)
    with pytest.raises(ValueError, match="end at 0.0"):
        RefinerSchedule(sigmas=(0.9, 0.5))
    with pytest.raises(ValueError, match="kv_max_frames"):
        RefinerSchedule(sink_size=2, kv_max_frames=2)
    stream = refiner.stream(PROMPT, fps=FPS)
    stream.push(stage1_latents(1))
    with pytest.raises(ValueError, match="at least one more frame"):
        stream.finish()
