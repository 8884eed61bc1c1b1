"""Temporal tiling against reference operators whose receptive field R is known exactly.

`causal_encoder`: a causal moving average over the last 8R raw frames (first frame repeated as padding),
then every 8th frame: latent j = f(raw frames 8j-8R..8j). `bidirectional_decoder`: a centred moving
average over 2R+1 latent frames (edge frames repeated), each latent repeated 8 times and the first 7
frames dropped (8k+1 frames). Tiling must be exact once the overlap covers R (causal) or 2R+1 (not).
"""

import pytest
import torch

from sanawm.vae import plan_tiles, tiled_over_time

R = 3


def causal_encoder(x: torch.Tensor, calls: list | None = None) -> torch.Tensor:
    if calls is not None:
        calls.append(x.shape[2])
    k = 8 * R + 1
    padded = torch.cat([x[:, :, :1].expand(-1, -1, k - 1, -1, -1), x], dim=2)
    return padded.unfold(2, k, 1).mean(-1)[:, :, ::8]


def bidirectional_decoder(z: torch.Tensor, calls: list | None = None) -> torch.Tensor:
    if calls is not None:
        calls.append(z.shape[2])
    padded = torch.cat(
        [z[:, :, :1].expand(-1, -1, R, -1, -1), z, z[:, :, -1:].expand(-1, -1, R, -1, -1)], dim=2
    )
    smooth = padded.unfold(2, 2 * R + 1, 1).mean(-1)
    return smooth.repeat_interleave(8, dim=2)[:, :, 7:]


def test_plan_tiles_covers_with_overlap():
    for n, tile, overlap in [(30, 8, 3), (9, 8, 1), (40, 16, 4), (5, 16, 4), (17, 5, 4)]:
        spans = plan_tiles(n, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(e - s == min(tile, n) for s, e in spans)
        for (s0, e0), (s1, _) in zip(spans[:-1], spans[1:], strict=True):
            assert s0 < s1 and e0 - s1 >= overlap
    with pytest.raises(ValueError, match="overlap must be >= 1"):
        plan_tiles(10, 4, 0)
    with pytest.raises(ValueError, match="must be larger than overlap"):
        plan_tiles(10, 4, 4)


def _tiled(fn, x, n_lat, encoder: bool, tile, overlap, calls=None):
    return tiled_over_time(
        lambda t: fn(t, calls),
        x,
        num_latent_frames=n_lat,
        in_stride=8 if encoder else 1,
        out_stride=1 if encoder else 8,
        causal=encoder,
        tile_latent_frames=tile,
        overlap=overlap,
    )


def test_causal_tiling_is_exact_once_overlap_covers_the_receptive_field():
    n_lat = 23
    x = torch.randn(2, 3, 8 * (n_lat - 1) + 1, 1, 1, dtype=torch.float64)
    full = causal_encoder(x)
    assert full.shape[2] == n_lat
    for overlap in range(1, R + 2):
        calls = []
        tiled = _tiled(causal_encoder, x, n_lat, True, 7, overlap, calls)
        assert max(calls) == 8 * 6 + 1  # no call sees more than a tile
        err = (tiled - full).abs().max().item()
        assert (err < 1e-12) == (overlap >= R), (overlap, err)


def test_bidirectional_tiling_is_exact_once_overlap_covers_both_sides():
    n_lat = 26
    z = torch.randn(1, 4, n_lat, 2, 1, dtype=torch.float64)
    full = bidirectional_decoder(z)
    assert full.shape[2] == 8 * (n_lat - 1) + 1
    for overlap in range(1, 2 * R + 3):
        calls = []
        tiled = _tiled(bidirectional_decoder, z, n_lat, False, 10, overlap, calls)
        assert max(calls) == 10
        err = (tiled - full).abs().max().item()
        assert (err < 1e-12) == (overlap >= 2 * R + 1), (overlap, err)


def test_untiled_paths_and_output_device():
    z = torch.randn(1, 2, 6, 1, 1)
    out = _tiled(bidirectional_decoder, z, 6, False, None, 4)
    assert torch.equal(out, bidirectional_decoder(z))
    out = _tiled(bidirectional_decoder, z, 6, False, 6, 4)  # one tile covers everything
    assert torch.equal(out, bidirectional_decoder(z))
    out = tiled_over_time(
        bidirectional_decoder,
        z,
        num_latent_frames=6,
        in_stride=1,
        out_stride=8,
        causal=False,
        tile_latent_frames=3,
        overlap=1,
        output_device="meta",
    )
    assert out.device.type == "meta" and out.shape == (1, 2, 41, 1, 1)
