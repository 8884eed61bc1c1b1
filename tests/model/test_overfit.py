"""Acceptance 7: a tiny model overfits one fixed batch under the flow-matching loss."""

import torch

from sanawm.model.config import get_preset
from sanawm.model.transformer import SanaWMTransformer
from sanawm.training.flow_matching import flow_matching_loss

from .helpers import camera_inputs


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    cfg = get_preset("sana-wm-tiny")
    model = SanaWMTransformer(cfg)
    T, grid = 3, (2, 3)
    x0 = torch.randn(2, cfg.in_channels, T, *grid)
    noise = torch.randn_like(x0)
    sigma = torch.tensor([[0.0, 0.5, 0.8], [0.0, 0.3, 0.95]])
    weight = (sigma > 0).float()  # the clean first frame is conditioning, not a target
    text = torch.randn(2, 3, cfg.caption_channels)
    camera, plucker = camera_inputs(T, grid)
    camera, plucker = camera.expand(2, -1, -1), plucker.expand(2, -1, -1, -1, -1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(300):
        loss = flow_matching_loss(model, x0, noise, sigma, text, None, camera, plucker, frame_weight=weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if losses[-1] * 5 < losses[0] and len(losses) >= 20:
            break
    assert losses[-1] * 5 <= losses[0], (losses[0], losses[-1], len(losses))
    # the camera branches received gradient: they are trainable from their zero start
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameter_groups()["camera"])
