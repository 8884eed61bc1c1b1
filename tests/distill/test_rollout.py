"""The self-forcing rollout is the inference streaming sampler: with every exit at the last step it
reproduces `generate(mode="streaming")`; earlier exits and gradients only where asked."""

import numpy as np
import pytest
import torch
from PIL import Image

from sanawm.cameras import latent_camera_inputs
from sanawm.distill import load_network, self_forcing_rollout
from sanawm.pipelines import WorldModelPipeline
from sanawm.sampling import Conditions, FewStepSchedule, chunk_layout

pytestmark = pytest.mark.usefixtures("one_thread")
STUDENT = (1000.0, 960.0, 889.0, 727.0, 0.0)


def _image(seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (72, 90, 3), dtype=np.uint8))


def test_rollout_equals_generate_streaming(teacher_pipeline):
    pipe = WorldModelPipeline.from_pretrained(teacher_pipeline)
    seed = 5
    cfg = pipe.generation_config(num_frames=57, timesteps=STUDENT, seed=seed)  # 8 latent frames: (2, 3, 3)
    assert cfg.mode == "streaming" and cfg.guidance == 1.0
    image, actions = _image(), "w-20,jw-20,l-16"
    expected = pipe.generate(image, actions=actions, config=cfg).latents

    # The same conditions and the pipeline's noise layout: one draw for the clip (seed), re-noising
    # chunk by chunk, step by step from a second generator (seed + 1).
    path = pipe.camera_path(cfg, actions=actions, image_size=(72, 90))
    pixels, path = pipe.prepare_image(image, path, cfg)
    first = pipe.vae.encode(pixels[:, :, None])
    camera, plucker = latent_camera_inputs(path.c2w, path.intrinsics, path.image_size).batched()
    text, mask = pipe.text_encoder.encode([""])
    T = camera.shape[1]
    chunks = chunk_layout(T, cfg.chunk, cfg.first_chunk)
    assert chunks == (2, 3, 3)
    noise = torch.randn(
        1, first.shape[1], T, *first.shape[-2:], generator=torch.Generator().manual_seed(seed)
    )
    g = torch.Generator().manual_seed(seed + 1)

    def renoise(j, i):
        return torch.randn(1, first.shape[1], chunks[j], *first.shape[-2:], generator=g)

    student = load_network(teacher_pipeline)  # the student starts as the teacher's weights
    with torch.no_grad():
        got = self_forcing_rollout(
            student,
            noise,
            first,
            Conditions(text, mask, camera, plucker),
            chunks,
            FewStepSchedule(STUDENT),
            cfg.kv_window,
            renoise,
        )
    err = (got - expected).abs().max().item()
    print(f"rollout vs generate --mode streaming: max |Δ| = {err:.2e}")
    assert err <= 1e-5


def test_exit_steps_gradients_and_noise_draws(teacher_pipeline):
    torch.manual_seed(0)
    model = load_network(teacher_pipeline)
    C, T, grid = model.cfg.in_channels, 5, (2, 2)
    chunks = (2, 3)
    noise, first = torch.randn(1, C, T, *grid), torch.randn(1, C, 1, *grid)
    from tests.model.helpers import camera_inputs

    camera, plucker = camera_inputs(T, grid)
    cond = Conditions(torch.zeros(1, 0, model.cfg.caption_channels), None, camera, plucker)
    draws = []

    def renoise(j, i):
        draws.append((j, i))
        return torch.randn(1, C, chunks[j], *grid, generator=torch.Generator().manual_seed(10 * j + i))

    x = self_forcing_rollout(
        model,
        noise,
        first,
        cond,
        chunks,
        FewStepSchedule(STUDENT),
        2,
        renoise,
        exit_steps=[0, 2],
        grad_chunks=[False, True],
    )
    assert draws == [(0, i) for i in range(4)] + [(1, i) for i in range(4)]  # every step's draw, any exit
    params = [p for p in model.parameters() if p.requires_grad]
    from_first = torch.autograd.grad(x[:, :, :2].sum(), params, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in from_first)  # chunk 0 took no gradient
    assert torch.equal(x[:, :, :1], first)
    # stream_step is not forward: count the gradient-taking network calls through the blocks instead
    grad_calls = []
    hook = model.blocks[0].register_forward_pre_hook(lambda m, a: grad_calls.append(torch.is_grad_enabled()))
    try:
        self_forcing_rollout(
            model,
            noise,
            first,
            cond,
            chunks,
            FewStepSchedule(STUDENT),
            2,
            renoise,
            exit_steps=[0, 2],
            grad_chunks=[False, True],
        )
    finally:
        hook.remove()
    # chunk 0: exit pass + commit; chunk 1: 2 steps + exit pass + commit = 6 calls, one with grad
    assert len(grad_calls) == 6 and sum(grad_calls) == 1
    from_second = torch.autograd.grad(x[:, :, 2:].sum(), params, allow_unused=True)
    assert any(g is not None and g.any() for g in from_second)

    # exit at step 0 of chunk 0 = the x0 prediction from pure noise at t = 1000
    state = model.init_stream_state(2)
    t = torch.tensor([[0.0, 1000.0]])
    x_in = torch.cat([first, noise[:, :, 1:2]], 2)
    v, _ = model.stream_step(x_in, t, cond.text, state, None, camera[:, :2], plucker[:, :, :2])
    assert torch.allclose(x[:, :, 1:2], noise[:, :, 1:2] - v[:, :, 1:2], atol=1e-6)

    with pytest.raises(ValueError, match="exit_steps"):
        self_forcing_rollout(model, noise, first, cond, chunks, FewStepSchedule(STUDENT), exit_steps=[4, 0])
