"""Bad input gets a clear error naming the fix; empty or fully masked text is allowed."""

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset

from .helpers import camera_inputs, randomize


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize(SanaWMTransformer(get_preset("sana-wm-micro"))).eval()


def _good(model, T=3):
    cfg = model.cfg
    camera, plucker = camera_inputs(T, (2, 3))
    return dict(
        latents=torch.randn(1, cfg.in_channels, T, 2, 3),
        timestep=torch.zeros(1, T),
        text=torch.randn(1, 2, cfg.caption_channels),
        camera=camera,
        plucker=plucker,
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(latents=a["latents"][:, :2]), "latents must be"),
        (lambda a: a.update(timestep=torch.zeros(1, 1, 3)), "one per latent frame"),
        (lambda a: a.update(text=torch.randn(1, 2, 7)), "text must be"),
        (lambda a: a.update(camera=a["camera"][:, :2]), "latent_camera_inputs"),
        (lambda a: a.update(plucker=a["plucker"][:, :6]), "plucker must be"),
    ],
)
def test_shape_errors_name_the_fix(model, change, message):
    args = _good(model)
    change(args)
    with pytest.raises(ValueError, match=message):
        model(**args)


def test_bad_chunks_are_refused(model):
    with pytest.raises(ValueError, match="sum to the 3 latent frames"):
        model(**_good(model), chunks=(2, 2))


def test_stream_state_must_match_the_model(model):
    other = SanaWMTransformer(get_preset("sana-wm-tiny"))
    a = _good(model)
    with pytest.raises(ValueError, match="blocks"):
        model.stream_step(a["latents"], a["timestep"], a["text"], other.init_stream_state())


def test_empty_text_equals_fully_masked_text(model):
    a = _good(model)
    with torch.no_grad():
        empty = model(a["latents"], a["timestep"], a["text"][:, :0], None, a["camera"], a["plucker"])
        masked = model(
            a["latents"],
            a["timestep"],
            a["text"],
            torch.zeros(1, 2, dtype=torch.bool),
            a["camera"],
            a["plucker"],
        )
        full = model(a["latents"], a["timestep"], a["text"], None, a["camera"], a["plucker"])
    assert torch.isfinite(empty).all()
    assert torch.allclose(empty, masked, atol=1e-6)
    assert not torch.allclose(empty, full)


def test_bf16_forward_runs(model):
    a = _good(model)
    m = SanaWMTransformer(model.cfg).to(torch.bfloat16).eval()
    with torch.no_grad():
        out = m(a["latents"], a["timestep"], a["text"], None, a["camera"], a["plucker"], chunks=(1, 2))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
