"""Acceptance 9: our bidirectional forward equals diffusers' SanaWMTransformer3DModel, after loading
a checkpoint that diffusers saved; and checkpoints round-trip both ways."""

import numpy as np
import pytest
import torch

from sanawm.cameras import latent_camera_inputs
from sanawm.model.config import ModelConfig
from sanawm.model.diffusers_compat import from_diffusers, save_diffusers

diffusers = pytest.importorskip("diffusers")
from diffusers import SanaWMTransformer3DModel  # noqa: E402

CONFIGS = {
    # 3 GDN + 1 softmax block; head dim 24 (camera softmax zero-pads it to 128); 4 text heads of 12
    "gggs-d24": ModelConfig(
        in_channels=8,
        num_layers=4,
        hidden_size=48,
        num_attention_heads=4,
        linear_head_dim=24,
        caption_channels=32,
        mlp_ratio=2.0,
        plucker_blocks=4,
    ),
    # 2x2 spatial patches, head dim 40, Plücker injection in the first two blocks only
    "ggs-p2-d40": ModelConfig(
        in_channels=4,
        num_layers=3,
        hidden_size=80,
        num_attention_heads=2,
        linear_head_dim=40,
        softmax_every_n=3,
        caption_channels=24,
        mlp_ratio=1.5,
        patch_size=(1, 2, 2),
        plucker_blocks=2,
    ),
}
LATENT_T = 3  # 17 raw frames


@torch.no_grad()
def _random_reference(cfg: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)
    ref = SanaWMTransformer3DModel(**cfg.to_diffusers_config()).eval()
    for name, p in ref.named_parameters():  # every branch live, zero-initialised ones included
        p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name else 0.0))
        if name.endswith("A_log"):
            p.copy_(torch.randn_like(p) * 0.5 - 1.0)
    assert sum(p.numel() for p in ref.parameters()) <= 5_000_000
    return ref


def _kitti_trajectory(data_root):
    rows = np.loadtxt(data_root / "real" / "kitti07" / "poses.txt")[: 8 * (LATENT_T - 1) + 1]
    c2w = np.tile(np.eye(4), (len(rows), 1, 1))
    c2w[:, :3, :4] = rows.reshape(-1, 3, 4)
    return c2w


def _synthetic_trajectory():
    from .helpers import orbit_c2w

    return orbit_c2w(8 * (LATENT_T - 1) + 1)


def _inputs(cfg: ModelConfig, c2w, intrinsics_src, grid=(4, 6)):
    g = torch.Generator().manual_seed(1)
    ph, pw = cfg.patch_size[1:]
    H, W = grid[0] * ph, grid[1] * pw  # latent size
    fx, fy, cx, cy, src_w, src_h = intrinsics_src
    sx, sy = 32 * W / src_w, 32 * H / src_h
    cam = latent_camera_inputs(c2w, [fx * sx, fy * sy, cx * sx, cy * sy], image_size=(32 * H, 32 * W))
    camera, plucker = cam.batched()
    latents = torch.randn(2, cfg.in_channels, LATENT_T, H, W, generator=g)
    timestep = torch.tensor([[0.0, 500.7, 999.2], [0.0, 120.0, 640.5]])  # per frame, first frame clean
    text = torch.randn(2, 5, cfg.caption_channels, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    return latents, timestep, text, mask, camera.expand(2, -1, -1), plucker.expand(2, -1, -1, -1, -1)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def _compare(cfg, c2w, intr, tmp_path, monkeypatch, exact_softmax: bool):
    ref = _random_reference(cfg)
    ref.save_pretrained(tmp_path)
    ours = from_diffusers(tmp_path).eval()
    latents, timestep, text, mask, camera, plucker = _inputs(cfg, c2w, intr)
    if exact_softmax:
        # diffusers casts float32 q/k/v to bfloat16 before its softmax attentions (for FlashAttention);
        # that 3-digit rounding is not part of the function, so the exact comparison removes it.
        monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self, *a, **k: self)
    with torch.no_grad():
        expected = ref(
            latents,
            timestep[:, None],
            text[:, None],
            encoder_attention_mask=mask,
            camera_conditions=camera,
            chunk_plucker=plucker,
        ).sample
        got = ours(latents, timestep, text, mask.bool(), camera, plucker)
    return got, expected


KITTI = (707.0912, 707.0912, 601.8873, 183.1104, 1226, 370)
SYNTHETIC = (600.0, 600.0, 640.0, 352.0, 1280, 704)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parity_on_real_kitti_trajectory(name, shared_data, tmp_path, monkeypatch):
    got, expected = _compare(
        CONFIGS[name], _kitti_trajectory(shared_data), KITTI, tmp_path, monkeypatch, True
    )
    assert _rel(got, expected) <= 1e-5


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parity_on_synthetic_trajectory(name, tmp_path, monkeypatch):
    got, expected = _compare(CONFIGS[name], _synthetic_trajectory(), SYNTHETIC, tmp_path, monkeypatch, True)
    assert _rel(got, expected) <= 1e-5


def test_unpatched_reference_differs_only_by_its_bfloat16_softmax(tmp_path, monkeypatch):
    got, expected = _compare(
        CONFIGS["gggs-d24"], _synthetic_trajectory(), SYNTHETIC, tmp_path, monkeypatch, False
    )
    assert _rel(got, expected) <= 5e-3


def test_from_module_and_round_trip_to_diffusers(tmp_path):
    cfg = CONFIGS["gggs-d24"]
    ref = _random_reference(cfg, seed=3)
    ours = from_diffusers(ref).eval()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k
    save_diffusers(ours, tmp_path / "export")
    back = SanaWMTransformer3DModel.from_pretrained(tmp_path / "export").eval()
    for k, v in ref.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    assert back.config.num_layers == cfg.num_layers and tuple(back.config.patch_size) == cfg.patch_size


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_diffusers(tmp_path)
    cfg = CONFIGS["gggs-d24"]
    ref = _random_reference(cfg)
    ref.save_pretrained(tmp_path)
    import json

    bad = json.loads((tmp_path / "config.json").read_text())
    bad["hidden_size"] = 96
    bad["num_attention_heads"] = 4
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="shape"):
        from_diffusers(tmp_path)
    bad["hidden_size"] = 48
    bad["ffn_type"] = "mlp"
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="ffn_type"):
        from_diffusers(tmp_path)
