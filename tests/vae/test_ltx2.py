"""LTX2VAE: a tiny randomly initialised `AutoencoderKLLTX2Video` (LTX-2's block layout and 8x/32x
strides, 4-32 channels, ~0.26M parameters) saved with `save_pretrained` and reloaded from the folder."""

import json

import pytest
import torch
from diffusers import AutoencoderKLLTX2Video
from diffusers.pipelines.sana_wm.pipeline_sana_wm import SanaWMPipeline

from sanawm.vae import LTX2VAE, VideoVAE, ltx2_strides

TINY_LTX2 = dict(
    latent_channels=8,
    block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 16, 32),
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1),
    patch_size=4,
    encoder_causal=True,
    decoder_causal=False,  # as in the LTX-2 release
    decoder_spatial_padding_mode="zeros",  # the release uses "reflect", which needs >= 2x2 latents
    scaling_factor=0.7,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)


@pytest.fixture(scope="module")
def ltx2_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = AutoencoderKLLTX2Video(**TINY_LTX2)
    with torch.no_grad():
        model.latents_mean.copy_(torch.randn(8) * 0.3)
        model.latents_std.copy_(torch.rand(8) + 0.5)
    folder = tmp_path_factory.mktemp("ltx2_vae")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vae(ltx2_folder):
    return LTX2VAE.from_pretrained(ltx2_folder)


@pytest.fixture(scope="module")
def pipeline(ltx2_folder):
    """diffusers' SANA-WM pipeline holding only the VAE: its own first-frame encode and decode."""
    model = AutoencoderKLLTX2Video.from_pretrained(ltx2_folder).eval()
    return SanaWMPipeline(tokenizer=None, text_encoder=None, vae=model, transformer=None, scheduler=None)


def _video(frames, height=64, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1


def test_roundtrip_shapes_and_frame_mapping(vae):
    assert isinstance(vae, VideoVAE)
    assert sum(p.numel() for p in vae.parameters()) < 5_000_000
    assert (vae.temporal_stride, vae.spatial_stride, vae.latent_channels) == (8, 32, 8)
    assert vae.encoder_causal and not vae.decoder_causal
    assert vae.dtype == torch.float32 and vae.device.type == "cpu"
    assert [vae.latent_frames(f) for f in (1, 9, 17, 961)] == [1, 2, 3, 121]
    assert [vae.num_frames(k) for k in (1, 2, 3, 121)] == [1, 9, 17, 961]
    with pytest.raises(ValueError, match="use 17 or 25 frames"):
        vae.latent_frames(20)
    with torch.no_grad():
        latents = vae.encode(_video(17))
        assert latents.shape == (1, 8, 3, 2, 2)
        assert vae.decode(latents).shape == (1, 3, 17, 64, 64)
        assert vae.encode(_video(1)).shape == (1, 8, 1, 2, 2)


def test_encode_decode_match_the_sana_wm_pipeline(vae, pipeline):
    model = pipeline.vae
    clip = _video(9)
    with torch.no_grad():
        # the pipeline's own first-frame encode and its decode
        first = pipeline._encode_first_frame(clip[:, :, 0], torch.device("cpu"), torch.float32)
        assert torch.equal(vae.encode(clip[:, :, :1]), first)
        latents = vae.encode(clip)
        assert torch.equal(vae.decode(latents), pipeline._decode_latents(latents))
        # the pipeline's formula on diffusers' encode of the whole clip
        mean = model.latents_mean.view(1, -1, 1, 1, 1)
        std = model.latents_std.view(1, -1, 1, 1, 1)
        posterior = model.encode(clip).latent_dist
        assert torch.equal(latents, (posterior.mode() - mean) * model.config.scaling_factor / std)
        # a posterior sample with a generator draws the same noise as diffusers
        sample = posterior.sample(generator=torch.Generator().manual_seed(3))
        ours = vae.encode(clip, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(
            ours, (sample - mean) * model.config.scaling_factor / std, rtol=0, atol=1e-6
        )
        assert not torch.equal(ours, latents)
    assert model.config.scaling_factor == 0.7 and not torch.all(model.latents_std == 1)


def test_temporal_tiling_matches_untiled():
    """The tiny layout without resnet blocks (its causal encoder reaches 6 latent frames back, its
    non-causal decoder 3 each way), on 14 latent frames (105 raw frames) in 4 tiles of 9: with an overlap
    of 7 (>= 6 and >= 2 x 3 + 1) tiled == untiled up to float summation order (1e-5). With less overlap
    it is approximate and the error falls as the overlap grows."""
    torch.manual_seed(1)
    shallow = {**TINY_LTX2, "layers_per_block": (0,) * 5, "decoder_layers_per_block": (0,) * 4}
    vae = LTX2VAE(AutoencoderKLLTX2Video(**shallow).eval())
    clip = _video(105, 32, 32, seed=1)
    with torch.no_grad():
        latents = vae.encode(clip)
        video = vae.decode(latents)
        enc = vae.encode(clip, tile_latent_frames=9, overlap=7)
        dec = vae.decode(latents, tile_latent_frames=9, overlap=7)
        torch.testing.assert_close(enc, latents, rtol=0, atol=1e-5)
        torch.testing.assert_close(dec, video, rtol=0, atol=1e-5)
        errors = [
            (vae.decode(latents, tile_latent_frames=9, overlap=overlap) - video).abs().max().item()
            for overlap in (2, 5)
        ]
    assert errors[0] > errors[1] > 1e-4


def test_loads_a_pipeline_folder_and_names_the_fix(ltx2_folder, tmp_path):
    pipeline_dir = tmp_path / "sana_wm"
    (pipeline_dir / "vae").mkdir(parents=True)
    for f in ltx2_folder.iterdir():
        (pipeline_dir / "vae" / f.name).write_bytes(f.read_bytes())
    assert LTX2VAE.from_pretrained(pipeline_dir).latent_channels == 8

    with pytest.raises(FileNotFoundError, match="does not exist"):
        LTX2VAE.from_pretrained(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(ValueError, match="expected config.json with _class_name AutoencoderKLLTX2Video in"):
        LTX2VAE.from_pretrained(other)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((ltx2_folder / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no diffusion_pytorch_model.safetensors"):
        LTX2VAE.from_pretrained(no_weights)


def test_bad_inputs_name_the_fix(vae):
    with pytest.raises(ValueError, match="multiples of the VAE's spatial stride 32"):
        vae.encode(torch.zeros(1, 3, 9, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, F, H, W\)"):
        vae.encode(torch.zeros(3, 9, 64, 64))
    with pytest.raises(ValueError, match="use 9 or 17 frames"):
        vae.encode(torch.zeros(1, 3, 12, 64, 64))
    with pytest.raises(ValueError, match=r"expected latents \(B, 8, T, h, w\)"):
        vae.decode(torch.zeros(1, 4, 2, 2, 2))


def test_strides_come_from_the_architecture():
    cfg = AutoencoderKLLTX2Video(**{**TINY_LTX2, "spatial_compression_ratio": None}).config
    assert ltx2_strides(cfg) == (8, 32)
    bad = AutoencoderKLLTX2Video(**{**TINY_LTX2, "spatial_compression_ratio": 64}).config
    with pytest.raises(ValueError, match="spatial_compression_ratio=64 but its blocks give 32"):
        ltx2_strides(bad)
