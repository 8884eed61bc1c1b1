"""SmallVideoVAE: our trainable causal video VAE (the "tiny" preset, ~0.33M parameters)."""

import json

import pytest
import torch

from sanawm.vae import (
    SMALL_VAE_PRESETS,
    SmallVAEConfig,
    SmallVideoVAE,
    VideoVAE,
    estimate_latent_stats,
    vae_loss,
)

TINY = SMALL_VAE_PRESETS["tiny"]


def _video(frames, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1


def _tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return SmallVideoVAE(SmallVAEConfig(**{**TINY.__dict__, **overrides}))


def test_shapes_strides_and_size():
    vae = _tiny()
    assert isinstance(vae, VideoVAE)
    assert sum(p.numel() for p in vae.parameters()) < 5_000_000
    assert (vae.temporal_stride, vae.spatial_stride, vae.latent_channels) == (8, 32, 8)
    with torch.no_grad():
        latents = vae.encode(_video(17, 64))
        assert latents.shape == (1, 8, 3, 2, 2)
        assert vae.decode(latents).shape == (1, 3, 17, 64, 64)
        assert vae.encode(_video(1)).shape == (1, 8, 1, 1, 1)
    with pytest.raises(ValueError, match="use 9 or 17 frames"):
        vae.encode(_video(10))


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    vae = _tiny(decoder_causal=False)
    vae.set_latent_stats(torch.linspace(-1, 1, 8), torch.linspace(0.5, 2, 8))
    vae.save_pretrained(tmp_path / "vae")
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert config["_class_name"] == "SmallVideoVAE" and config["decoder_causal"] is False
    loaded = SmallVideoVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config == vae.config
    state, loaded_state = vae.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    clip = _video(9)
    with torch.no_grad():
        assert torch.equal(vae.encode(clip), loaded.encode(clip))
        assert torch.equal(vae.decode(vae.encode(clip)), loaded.decode(loaded.encode(clip)))


def test_int8_storage_loads_transparently_and_close(tmp_path):
    """save_pretrained(int8=True) stores the convolutions as int8 (the shipped VAE's storage): a quarter
    of fp32's bytes for them, read back by from_pretrained within half a quantisation step per weight,
    buffers (latent stats) and norms exact, and the decoded video close to the float VAE's."""
    from sanawm.model.int8 import file_is_int8, load_weights

    vae = SmallVideoVAE(SmallVAEConfig(latent_channels=8, channels=(16, 32, 64, 64)))
    vae.set_latent_stats(torch.linspace(-1, 1, 8), torch.linspace(0.5, 2, 8))
    vae.save_pretrained(tmp_path / "fp32")
    vae.save_pretrained(tmp_path / "int8", int8=True)
    small, full = (tmp_path / d / "model.safetensors" for d in ("int8", "fp32"))
    assert file_is_int8(small) and not file_is_int8(full)
    assert small.stat().st_size < 0.4 * full.stat().st_size
    loaded = SmallVideoVAE.from_pretrained(tmp_path / "int8")
    state, back = vae.state_dict(), loaded.state_dict()
    assert state.keys() == back.keys() and set(load_weights(small)) == set(state)
    quantised = 0
    for k, w in state.items():
        if torch.equal(w, back[k]):
            continue
        quantised += 1
        step = w.reshape(w.shape[0], -1).abs().amax(1) / 127  # one scale per output channel
        err = (w - back[k]).reshape(w.shape[0], -1).abs().amax(1)
        assert (err <= step / 2 + 1e-7).all(), k
    assert quantised >= 8
    assert torch.equal(loaded.latents_mean, vae.latents_mean)
    assert torch.equal(loaded.latents_std, vae.latents_std)
    clip = _video(9)
    with torch.no_grad():
        ref = vae.decode(vae.encode(clip))
        out = loaded.decode(loaded.encode(clip))
    assert not torch.equal(ref, out)
    assert (out - ref).norm() / ref.norm() < 0.05


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected config.json and model.safetensors"):
        SmallVideoVAE.from_pretrained(tmp_path)
    _tiny().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "_class_name": "AutoencoderKL"}))
    with pytest.raises(ValueError, match="expected 'SmallVideoVAE'"):
        SmallVideoVAE.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "width": 3}))
    with pytest.raises(ValueError, match=r"unknown fields \['width'\]"):
        SmallVideoVAE.from_pretrained(tmp_path)


def _smooth_clip(frames=9, size=32):
    t = torch.arange(frames, dtype=torch.float32).view(-1, 1, 1)
    y = torch.arange(size, dtype=torch.float32).view(1, -1, 1)
    x = torch.arange(size, dtype=torch.float32).view(1, 1, -1)
    channels = torch.broadcast_tensors(
        torch.sin(0.3 * x + 0.2 * t), torch.cos(0.25 * y - 0.15 * t), torch.sin(0.2 * (x + y) + 0.1 * t)
    )
    return 0.8 * torch.stack(channels)[None]


def test_a_few_optimisation_steps_reduce_the_loss():
    vae = _tiny()
    clip = _smooth_clip()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for step in range(12):
        out = vae_loss(vae, clip, generator=torch.Generator().manual_seed(step))
        assert set(out) == {"loss", "l1", "l2", "kl"}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_latent_stats_normalise_the_latents():
    vae = _tiny()
    clips = [_video(9, seed=s) for s in range(3)]
    mean, std = estimate_latent_stats(vae, clips)
    vae.set_latent_stats(mean, std)
    with torch.no_grad():
        latents = torch.cat([vae.encode(c) for c in clips], dim=2)
        torch.testing.assert_close(latents.mean((0, 2, 3, 4)), torch.zeros(8), rtol=0, atol=1e-4)
        torch.testing.assert_close(
            latents.std((0, 2, 3, 4), unbiased=False), torch.ones(8), rtol=0, atol=1e-3
        )
        # denormalize inverts normalize
        torch.testing.assert_close(vae.denormalize(vae.normalize(latents)), latents, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="must be positive"):
        vae.set_latent_stats(mean, -std)


@pytest.mark.parametrize("decoder_causal", [True, False])
def test_temporal_tiling(decoder_causal, monkeypatch):
    """The tiny preset's encoder reaches 11 latent frames back (85 raw frames); its decoder 10 latent
    frames back when causal, 5 each way when not. Tiled == untiled (1e-5) once the overlap covers that
    (11; 10 or 2 x 5 + 1); below, the error falls with the overlap. (Overlapping tiles also for the causal
    decoder here, which `decode` would otherwise run piece by piece.)"""
    monkeypatch.setattr(SmallVideoVAE, "decodes_in_pieces", property(lambda self: False))
    vae = _tiny(decoder_causal=decoder_causal)
    clip = _video(8 * 15 + 1, seed=2)  # 16 latent frames, 3 tiles of 13
    with torch.no_grad():
        latents = vae.encode(clip)
        video = vae.decode(latents)
        torch.testing.assert_close(
            vae.encode(clip, tile_latent_frames=13, overlap=11), latents, rtol=0, atol=1e-5
        )
        tiled = vae.decode(latents, tile_latent_frames=13, overlap=10 if decoder_causal else 11)
        torch.testing.assert_close(tiled, video, rtol=0, atol=1e-5)
        errors = [
            (vae.decode(latents, tile_latent_frames=6, overlap=overlap) - video).abs().max().item()
            for overlap in (1, 3)
        ]
    assert errors[0] > errors[1] > 1e-5


@pytest.mark.parametrize("layers", [1, 2])
def test_decoder_receptive_field_is_tight(layers, monkeypatch):
    """`decoder_receptive_field` (10 latent frames for one block a level, 18 for two) is the least tile
    overlap, and so the least streaming context, at which overlapping tiles decode as the whole clip does;
    it is `decode_overlap()`, the overlap `decode` takes by default where it tiles."""
    vae = _tiny(layers_per_level=layers).eval().double()
    monkeypatch.setattr(SmallVideoVAE, "decodes_in_pieces", property(lambda self: False))  # overlapping tiles
    field = vae.decoder_receptive_field
    assert field == {1: 10, 2: 18}[layers] and vae.decode_overlap() == field
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(1, vae.latent_channels, 2 * field + 6, 1, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        whole = vae.decode(latents)

        def error(**overlap) -> float:
            return (vae.decode(latents, tile_latent_frames=field + 3, **overlap) - whole).abs().max().item()

        exact, short = error(), error(overlap=field - 1)  # the default overlap, and one frame less
    # float64, but the norms' scale is computed in float32: "equal" is ~1e-7 here. One frame less of
    # overlap misses the last layers' reach: 4e-2 with one block a level, ~1e-5 with two (deeper, weaker).
    assert exact < 1e-6 and short > 10 * exact, (exact, short)


@pytest.mark.parametrize("pieces", [(23,), (1, 22), (4, 3, 3, 3, 3, 3, 4), (5, 1, 1, 16)])
def test_decoder_in_pieces_equals_one_call(pieces):
    """The causal decoder with a carried cache: any split of a clip decodes as the whole clip does."""
    vae = _tiny().eval()
    z = torch.randn(1, vae.latent_channels, sum(pieces), 1, 1, generator=torch.Generator().manual_seed(5))
    cache, out, start = {}, [], 0
    with torch.no_grad():
        whole = vae.decoder(z)
        for n in pieces:
            out.append(vae.decode_piece(z[:, :, start : start + n], cache))
            start += n
    assert [o.shape[2] for o in out] == [8 * pieces[0] - 7] + [8 * n for n in pieces[1:]]
    torch.testing.assert_close(torch.cat(out, 2), whole, rtol=0, atol=1e-5)


def test_auto_decode_goes_piece_by_piece_exactly(monkeypatch):
    """tile_latent_frames="auto": pieces of `default_decode_tile` (12) latent frames with carried state,
    nothing decoded twice, equal to one call on the whole clip; a non-causal decoder cannot."""
    vae = _tiny().eval()
    calls = []
    piece = vae.decode_piece
    monkeypatch.setattr(vae, "decode_piece", lambda z, cache: calls.append(z.shape[2]) or piece(z, cache))
    latents = torch.randn(1, vae.latent_channels, 30, 1, 1, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        tiled = vae.decode(latents, tile_latent_frames="auto")
        assert calls == [12, 12, 6]
        whole = vae.decode(latents)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    bidirectional = _tiny(decoder_causal=False).eval()
    assert not bidirectional.decodes_in_pieces
    with pytest.raises(ValueError, match="causal decoder"):
        bidirectional.decoder(latents[:, :, :3], {})
