"""Acceptance 2 and 3: streaming reproduces the chunk-causal forward; causality per mode."""

from dataclasses import replace

import pytest
import torch

from sanawm.model.config import get_preset
from sanawm.model.transformer import SanaWMTransformer

from .helpers import camera_inputs, randomize

CHUNKS = (2, 1, 2, 1, 1, 2, 1)  # 7 chunks, 10 latent frames, uneven sizes
GRID = (2, 3)


def _setup(seed=0):
    torch.manual_seed(seed)
    cfg = get_preset("sana-wm-tiny")
    model = randomize(SanaWMTransformer(cfg), seed=seed).eval()
    T = sum(CHUNKS)
    latents = torch.randn(1, cfg.in_channels, T, *GRID)
    timestep = torch.rand(1, T) * 1000
    text = torch.randn(1, 4, cfg.caption_channels)
    mask = torch.tensor([[True, True, True, False]])
    camera, plucker = camera_inputs(T, GRID)
    return model, latents, timestep, text, mask, camera, plucker


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def _stream(model, latents, timestep, text, mask, camera, plucker, kv_window, recommit_clean=True):
    state, outs, start = model.init_stream_state(kv_window), [], 0
    for size in CHUNKS:
        sl = slice(start, start + size)
        args = (text, state, mask, camera[:, sl], plucker[:, :, sl])
        out, _ = model.stream_step(
            latents[:, :, sl], timestep[:, sl] * 0.5, *args
        )  # a denoising step: discarded
        out, state = model.stream_step(latents[:, :, sl], timestep[:, sl], *args)  # the committing pass
        outs.append(out)
        start += size
    return torch.cat(outs, 2), state


@pytest.mark.parametrize("kv_window", [2, 1, None])
def test_streaming_reproduces_chunk_causal(kv_window):
    model, latents, timestep, text, mask, camera, plucker = _setup()
    with torch.no_grad():
        full = model(latents, timestep, text, mask, camera, plucker, chunks=CHUNKS, kv_window=kv_window)
        streamed, state = _stream(model, latents, timestep, text, mask, camera, plucker, kv_window)
    assert _rel(streamed, full) <= 1e-4
    assert state.frames_done == sum(CHUNKS) and state.chunks_done == len(CHUNKS)


def test_every_carried_piece_matters():
    """Dropping any one kind of carried state breaks the equivalence, so the test above exercises it."""
    model, latents, timestep, text, mask, camera, plucker = _setup()
    with torch.no_grad():
        full = model(latents, timestep, text, mask, camera, plucker, chunks=CHUNKS, kv_window=2)
        for field in ("gdn", "gdn_cam", "k_tail", "k_cam_tail", "kv", "kv_cam", "ffn_tail"):
            state, outs, start = model.init_stream_state(2), [], 0
            for size in CHUNKS:
                sl = slice(start, start + size)
                out, state = model.stream_step(
                    latents[:, :, sl], timestep[:, sl], text, state, mask, camera[:, sl], plucker[:, :, sl]
                )
                outs.append(out)
                state = _drop(state, field)
                start += size
            assert _rel(torch.cat(outs, 2), full) > 1e-3, field


def _drop(state, field):
    import dataclasses

    blocks = []
    for b in state.blocks:
        if field == "ffn_tail":
            blocks.append(dataclasses.replace(b, ffn_tail=None))
        elif field in ("kv", "kv_cam"):
            window = getattr(b.attn, field)
            keep = None if window is None else dataclasses.replace(window, sink=None, recent=())
            blocks.append(dataclasses.replace(b, attn=dataclasses.replace(b.attn, **{field: keep})))
        else:
            blocks.append(dataclasses.replace(b, attn=dataclasses.replace(b.attn, **{field: None})))
    return dataclasses.replace(state, blocks=tuple(blocks))


def test_stream_state_memory_is_constant():
    model, latents, timestep, text, mask, camera, plucker = _setup()
    sizes = []
    with torch.no_grad():
        state = model.init_stream_state(2)
        for c in range(latents.shape[2]):
            _, state = model.stream_step(
                latents[:, :, c : c + 1],
                timestep[:, c : c + 1],
                text,
                state,
                mask,
                camera[:, c : c + 1],
                plucker[:, :, c : c + 1],
            )
            sizes.append(state.nbytes())
    assert sizes[3:] == [sizes[3]] * len(sizes[3:])  # sink + 2 recent chunks: full from the 4th chunk on


def test_chunk_causal_ignores_the_future_and_bidirectional_does_not():
    model, latents, timestep, text, mask, camera, plucker = _setup()
    changed = latents.clone()
    boundary = sum(CHUNKS[:4])  # chunks 0..3 must not see chunks 4..
    changed[:, :, boundary:] += torch.randn_like(changed[:, :, boundary:])
    cam2, pl2 = camera.clone(), plucker.clone()
    cam2[:, boundary:, 3] += 0.5  # move the future cameras too
    pl2[:, :, boundary:] += 0.3
    t2 = timestep.clone()
    t2[:, boundary:] = 999 - t2[:, boundary:]
    with torch.no_grad():
        a = model(latents, timestep, text, mask, camera, plucker, chunks=CHUNKS, kv_window=2)
        b = model(changed, t2, text, mask, cam2, pl2, chunks=CHUNKS, kv_window=2)
        c = model(latents, timestep, text, mask, camera, plucker)
        d = model(changed, t2, text, mask, cam2, pl2)
    assert torch.equal(a[:, :, :boundary], b[:, :, :boundary])
    assert not torch.allclose(a[:, :, boundary:], b[:, :, boundary:])
    assert (c[:, :, :boundary] - d[:, :, :boundary]).abs().max() > 1e-3


def test_chunk_causal_sees_its_own_chunk():
    """Changing the last frame of a chunk changes the chunk's first frame (within-chunk bidirectional)."""
    model, latents, timestep, text, mask, camera, plucker = _setup()
    changed = latents.clone()
    changed[:, :, 1] += 1.0  # second frame of chunk 0
    with torch.no_grad():
        a = model(latents, timestep, text, mask, camera, plucker, chunks=CHUNKS)
        b = model(changed, timestep, text, mask, camera, plucker, chunks=CHUNKS)
    assert (a[:, :, 0] - b[:, :, 0]).abs().max() > 1e-4


def test_stream_state_is_not_mutated():
    model, latents, timestep, text, mask, camera, plucker = _setup()
    with torch.no_grad():
        s0 = model.init_stream_state()
        _, s1 = model.stream_step(
            latents[:, :, :2], timestep[:, :2], text, s0, mask, camera[:, :2], plucker[:, :, :2]
        )
        a, _ = model.stream_step(
            latents[:, :, 2:3], timestep[:, 2:3], text, s1, mask, camera[:, 2:3], plucker[:, :, 2:3]
        )
        model.stream_step(
            latents[:, :, 2:3], timestep[:, 2:3] * 0, text, s1, mask, camera[:, 2:3], plucker[:, :, 2:3]
        )
        b, _ = model.stream_step(
            latents[:, :, 2:3], timestep[:, 2:3], text, s1, mask, camera[:, 2:3], plucker[:, :, 2:3]
        )
    assert torch.equal(a, b) and s0.frames_done == 0 and s1.frames_done == 2


def test_stream_step_with_precomputed_ropes_is_the_same():
    """`stream_ropes` is the only way frames_done reaches the network: passing its angles changes nothing,
    and angles of another offset change the output (what the CUDA-graph replay relies on)."""
    model, latents, timestep, text, mask, camera, plucker = _setup()
    with torch.no_grad():
        _, s1 = model.stream_step(
            latents[:, :, :2], timestep[:, :2], text, model.init_stream_state(), mask, camera[:, :2]
        )
        args = (latents[:, :, 2:4], timestep[:, 2:4], text, s1, mask, camera[:, 2:4], plucker[:, :, 2:4])
        a, sa = model.stream_step(*args)
        b, sb = model.stream_step(*args, ropes=model.stream_ropes(args[0], s1))
        c, _ = model.stream_step(*args, ropes=model.stream_ropes(args[0], replace(s1, frames_done=5)))
        with pytest.raises(ValueError, match="stream_ropes"):
            model.stream_step(*args, ropes=model.stream_ropes(latents[:, :, :1], s1))
    assert torch.equal(a, b) and (sa.frames_done, sb.frames_done) == (4, 4)
    assert not torch.allclose(a, c)
