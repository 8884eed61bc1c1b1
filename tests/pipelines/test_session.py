"""WorldSession: stepping, save / restore / fork, file round trip, parity with sample_chunked."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from sanawm.cameras import actions_to_trajectory, latent_camera_inputs
from sanawm.cameras.actions import actions_to_c2w
from sanawm.pipelines import GenerationConfig, WorldModelPipeline, load_state, rollout_actions, save_state
from sanawm.pipelines.session import yaw_pitch_of
from sanawm.sampling import Conditions, EulerSchedule, FewStepSchedule, Guidance, sample_chunked
from sanawm.vae import to_uint8_frames
from tests.pipelines.test_world_model import INTRINSICS, _image

CFG = GenerationConfig(
    mode="streaming", height=64, width=64, steps=2, guidance=2.0, chunk=1, first_chunk=2, seed=5
)


@pytest.fixture(scope="module")
def pipe(reference_pipeline_folder):
    return WorldModelPipeline.from_pretrained(reference_pipeline_folder)


def _session(pipe, cfg=CFG, **kw):
    return pipe.session(_image(), "a corridor", intrinsics=INTRINSICS, config=cfg, **kw)


def test_rollout_from_identity_matches_dsl_and_splits():
    full, yaw, pitch = rollout_actions("w-5,il-7,dk-4")
    assert np.array_equal(full, actions_to_c2w("w-5,il-7,dk-4")[1:])
    first, y1, p1 = rollout_actions("w-5,il-3")
    rest, y2, p2 = rollout_actions("il-4,dk-4", first[-1, :3, 3], y1, p1)
    assert np.array_equal(np.concatenate([first, rest]), full) and (y2, p2) == (yaw, pitch)
    assert np.allclose(yaw_pitch_of(full[-1]), (yaw, pitch), atol=1e-12)


def test_two_steps_equal_one_step(pipe):
    one = _session(pipe)
    frames = one.step(actions="w-16,l-16")
    assert frames.shape == (33, 64, 64, 3) and frames.dtype == np.uint8 and one.pending_frames == 0
    two = _session(pipe)
    a = two.step(actions="w-12")
    assert len(a) == 9 and two.pending_frames == 4  # first chunk: 2 latent frames = 9 raw frames
    b = two.step(actions="w-4,l-16")
    assert np.array_equal(np.concatenate([a, b]), frames)
    assert np.array_equal(two.trajectory.c2w, one.trajectory.c2w)
    # poses continue the path exactly like the actions they came from
    three = _session(pipe)
    poses = actions_to_trajectory("w-16,l-16").c2w[1:]
    assert np.array_equal(
        np.concatenate([three.step(poses=poses[:20]), three.step(poses=poses[20:])]), frames
    )


def test_session_through_cuda_graphs_is_the_same(pipe):
    """A session's chunks run through the pipeline's graphs (the CPU stand-in here) when enabled."""
    from sanawm.model.graphs import EagerCapture, GraphedStreamStep

    eager = _session(pipe).step(actions="w-16,l-16")
    pipe.stream_graphs = GraphedStreamStep(pipe.transformer, capture=EagerCapture())
    try:
        session = _session(pipe)
        graphed = np.concatenate([session.step(actions="w-12"), session.step(actions="w-4,l-16")])
        assert pipe.stream_graphs.stats.replays > 0
    finally:
        pipe.stream_graphs = None
    assert np.array_equal(graphed, eager)


def test_restore_and_file_round_trip_and_constant_memory(pipe, tmp_path):
    session = _session(pipe)
    session.step(actions="w-12")
    saved = session.save()
    after = session.step(actions="w-12,j-16")
    session.restore(saved)
    assert np.array_equal(session.step(actions="w-12,j-16"), after)

    save_state(saved, tmp_path / "world.pt")
    other = _session(pipe, speeds="streaming")  # restore replaces everything, speeds included
    other.restore(load_state(tmp_path / "world.pt"))
    assert np.array_equal(other.step(actions="w-12,j-16"), after)

    def nbytes(state):
        return sum(s.nbytes() for s in state.stream_states) + state.context.numel() * 4

    before = nbytes(session.save())
    session.step(actions="w-16")
    assert nbytes(session.save()) == before  # KV window full and latent context bounded


def test_context_noise_generator_is_part_of_the_state(pipe, tmp_path):
    cfg = GenerationConfig(**{**CFG.__dict__, "context_sigma": 0.05})
    session = _session(pipe, cfg)
    session.step(actions="w-12")
    saved = session.save()
    save_state(saved, tmp_path / "world.pt")
    after = session.step(actions="w-12,j-8")
    assert np.abs(after.astype(int) - _session(pipe).step(actions="w-24,j-8")[9:].astype(int)).max() > 0
    session.restore(load_state(tmp_path / "world.pt"))
    assert np.array_equal(session.step(actions="w-12,j-8"), after)
    # states saved before context noise existed have no context_rng: restored, the default generates
    legacy = _session(pipe)
    legacy.step(actions="w-12")
    old = replace(legacy.save(), context_rng=None)
    expected = legacy.step(actions="w-12")
    legacy.restore(old)
    assert np.array_equal(legacy.step(actions="w-12"), expected)


def test_forks_share_the_past_and_diverge(pipe):
    session = _session(pipe)
    past = session.step(actions="w-16")
    left, right = session.fork(), session.fork()
    go_left, go_right = left.step(actions="j-16"), right.step(actions="l-16")
    assert go_left.shape == go_right.shape == (16, 64, 64, 3)
    assert np.abs(go_left.astype(int) - go_right.astype(int)).max() > 0
    again = _session(pipe)  # same seed, same actions: the same past and the same left future
    assert np.array_equal(again.step(actions="w-16"), past)
    assert np.array_equal(again.step(actions="j-16"), go_left)
    assert session.frames_done == 17 and left.frames_done == 33  # forks do not advance their parent


@pytest.mark.parametrize(
    "timesteps, context_sigma", [(None, 0.0), ((1000.0, 500.0, 0.0), 0.0), ((1000.0, 500.0, 0.0), 0.05)]
)
def test_latents_equal_sample_chunked(pipe, timesteps, context_sigma):
    """Same path, seed and per-chunk noise draws -> the latents of `sample_chunked(streaming=True)`."""
    cfg = GenerationConfig(**{**CFG.__dict__, "timesteps": timesteps, "context_sigma": context_sigma})
    session = _session(pipe, cfg, decode_context=16)  # context then holds every latent frame
    session.step(actions="w-16,l-16")
    state = session.save()
    got = state.context
    chunks = (2, 1, 1, 1)
    g = torch.Generator().manual_seed(cfg.seed)
    shape = state.first_latent.shape
    noise = torch.cat([torch.randn(*shape[:2], n, *shape[3:], generator=g) for n in chunks], 2)
    renoise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    context_gen = torch.Generator().manual_seed(cfg.seed + 3)

    def renoise(i, step):
        return torch.randn(*shape[:2], chunks[i], *shape[3:], generator=renoise_gen)

    def context_noise(i):
        return torch.randn(*shape[:2], chunks[i], *shape[3:], generator=context_gen)

    camera, plucker = latent_camera_inputs(state.c2w, state.intrinsics, state.image_size).batched()
    cond = Conditions(state.text, state.text_mask, camera, plucker)
    schedule = FewStepSchedule(timesteps) if timesteps else EulerSchedule(2, cfg.shift, pipe.scheduler_config)
    expected = sample_chunked(
        pipe.transformer,
        noise,
        state.first_latent,
        cond,
        chunks,
        schedule,
        Guidance(cfg.guidance),
        state.negative_text,
        state.negative_mask,
        kv_window=cfg.kv_window,
        streaming=True,
        renoise=renoise,
        context_sigma=context_sigma,
        context_noise=context_noise,
    )
    assert got.shape == expected.shape
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-4


def test_clear_errors(pipe):
    session = _session(pipe)
    with pytest.raises(ValueError, match="exactly one"):
        session.step(actions="w-8", poses=np.eye(4)[None])
    with pytest.raises(ValueError, match="exactly one"):
        session.step()
    sheared = np.eye(4)[None].copy()
    sheared[0, 0, 1] = 0.5
    with pytest.raises(ValueError, match="orthonormal"):
        session.step(poses=sheared)
    with pytest.raises(ValueError, match="unknown key"):
        session.step(actions="x-8")
    assert len(session.trajectory) == 1  # failed steps leave the path alone
    with pytest.raises(ValueError, match="mode='streaming'"):
        _session(pipe, GenerationConfig(height=64, width=64))
    with pytest.raises(ValueError, match="field of view"):
        pipe.session(_image(), intrinsics=[5.0, 5.0, 50.0, 40.0], config=CFG)
    with pytest.raises(ValueError, match="decode_context"):
        _session(pipe, decode_context=0)


def test_decoding_as_you_go_is_exact_for_a_causal_decoder(pipe):
    """With a causal decoder and context covering its receptive field, chunk-by-chunk decoding equals
    decoding the whole clip (here the context holds every latent frame, so that is guaranteed)."""
    from sanawm.vae.small import SMALL_VAE_PRESETS, SmallVideoVAE

    torch.manual_seed(0)
    causal = WorldModelPipeline(
        pipe.transformer, SmallVideoVAE(SMALL_VAE_PRESETS["tiny"]).eval(), pipe.text_encoder
    )
    session = _session(causal, decode_context=16)
    frames = session.step(actions="w-12")
    frames = np.concatenate([frames, session.step(actions="w-12,l-8")])
    video = causal.vae.decode(session.save().context)
    whole = to_uint8_frames(video)
    assert frames.shape == whole.shape == (33, 64, 64, 3)
    assert np.abs(frames.astype(int) - whole.astype(int)).max() <= 1


def _tiny_causal(pipe):
    from sanawm.vae.small import SMALL_VAE_PRESETS, SmallVideoVAE

    torch.manual_seed(0)
    return WorldModelPipeline(
        pipe.transformer, SmallVideoVAE(SMALL_VAE_PRESETS["tiny"]).eval(), pipe.text_encoder
    )


def test_causal_decoder_decodes_each_chunk_once_and_exactly(pipe, monkeypatch):
    """A VAE that decodes in pieces decodes each chunk alone with the carried conv cache: the frames equal
    decoding the whole clip whatever `decode_context`, and no latent frame is decoded twice."""
    causal = _tiny_causal(pipe)
    decoded = []
    piece = causal.vae.decode_piece
    monkeypatch.setattr(
        causal.vae, "decode_piece", lambda z, cache: decoded.append(z.shape[2]) or piece(z, cache)
    )
    got = {}
    for context in (None, 4):
        decoded.clear()
        session = _session(causal, decode_context=context)
        got[context] = np.concatenate([session.step(actions="w-64"), session.step(actions="w-32,l-24")])
        assert session.save().decode_context == (10 if context is None else 4)
        assert sum(decoded) == 16  # the clip's 16 latent frames, each once
    full = _session(causal, decode_context=40)
    frames = np.concatenate([full.step(actions="w-64"), full.step(actions="w-32,l-24")])
    whole = to_uint8_frames(causal.vae.decode(full.save().context))
    assert frames.shape == whole.shape == got[None].shape == (121, 64, 64, 3)
    for g in got.values():
        assert np.abs(g.astype(int) - whole.astype(int)).max() <= 1


def test_restored_session_rebuilds_the_decoder_cache_exactly(pipe, tmp_path):
    """A session restored from a saved state (or loaded from a file) rebuilds the decoder's carried cache
    from the state's context: with the default `decode_context` (`vae.decode_overlap()`, 10 latent frames
    here) it continues with the frames of the uninterrupted session; with 4 (which does not cover the
    decoder's reach) the frames after the restore visibly differ. A fork shares its parent's cache."""
    causal = _tiny_causal(pipe)
    got, first = {}, {}
    for context in (None, 4):
        session = _session(causal, decode_context=context)
        session.step(actions="w-96")  # 13 latent frames: more than the context
        state = session.save()
        first[context] = session.step(actions="w-24,l-24")  # uninterrupted
        save_state(state, tmp_path / "world.pt")
        restored = _session(causal, decode_context=context)
        restored.restore(load_state(tmp_path / "world.pt"))
        got[context] = restored.step(actions="w-24,l-24")
    assert np.abs(got[None].astype(int) - first[None].astype(int)).max() <= 1
    assert np.abs(got[4].astype(int) - first[4].astype(int)).max() > 1
    session = _session(causal)
    session.step(actions="w-40")
    fork = session.fork()
    assert fork._decode_cache is not None and fork._decode_cache is not session._decode_cache
    assert np.array_equal(fork.step(actions="l-32"), session.step(actions="l-32"))
