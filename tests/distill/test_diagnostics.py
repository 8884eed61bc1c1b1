"""The camera probe: zero for a network that cannot see the camera, positive for one that does, read
with clean context as the streaming sampler has it, and the student's numbers beside the teacher's."""

import copy

import pytest
import torch

from sanawm.distill.diagnostics import CameraProbe, camera_gap, probe_x0
from sanawm.model import SanaWMTransformer, get_preset
from sanawm.sampling import Conditions
from tests.model.helpers import camera_inputs, orbit_c2w, randomize

pytestmark = pytest.mark.usefixtures("one_thread")
T, GRID, CHUNKS, SIGMAS = 5, (2, 2), (2, 3), (1.0, 0.96, 0.889, 0.727)


def camera_blind(model: SanaWMTransformer) -> SanaWMTransformer:
    """The same network with its camera and Plücker branches cut at their output projections."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for block in model.blocks:
            for lin in (block.attn.out_proj_cam, block.plucker_proj):
                lin.weight.zero_()
                lin.bias.zero_()
    return model


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).eval()
    g = torch.Generator().manual_seed(1)
    C = model.cfg.in_channels
    clean, noise = torch.randn(2, C, T, *GRID, generator=g), torch.randn(2, C, T, *GRID, generator=g)
    cam_a, pl_a = camera_inputs(T, GRID)
    c2w = orbit_c2w(8 * (T - 1) + 1)
    c2w[:, :3, 3] *= -3.0  # another path for the second clip
    cam_b, pl_b = camera_inputs(T, GRID, c2w)
    text = torch.randn(2, 3, model.cfg.caption_channels, generator=g)
    cond = Conditions(text, None, torch.cat([cam_a, cam_b]), torch.cat([pl_a, pl_b]))
    return model, clean, noise, cond


def test_gap_is_zero_without_camera_branches_and_positive_with(setup):
    model, clean, noise, cond = setup
    live = camera_gap(model, clean, noise, cond, SIGMAS, CHUNKS)
    assert live["removed"] > 1e-3 and live["swapped"] > 1e-3
    blind = camera_gap(camera_blind(model), clean, noise, cond, SIGMAS, CHUNKS)
    assert blind == {"removed": 0.0, "swapped": 0.0}
    single = Conditions(cond.text[:1], None, cond.camera[:1], None)
    one = camera_gap(model, clean[:1], noise[:1], single, SIGMAS, CHUNKS)
    assert one["swapped"] is None and one["removed"] > 0
    with pytest.raises(ValueError, match="camera"):
        camera_gap(model, clean, noise, Conditions(cond.text), SIGMAS, CHUNKS)


def test_chunks_see_clean_context_and_their_own_noise_level(setup):
    model, clean, noise, cond = setup
    base = probe_x0(model, clean, noise, cond, SIGMAS, CHUNKS)
    assert base.shape == (2, clean.shape[1], T - 1, *GRID)
    # σ = 0 everywhere: the prediction is the clean input itself
    assert torch.allclose(probe_x0(model, clean, noise, cond, (0.0,), CHUNKS), clean[:, :, 1:])
    # chunk 1 sees chunk 0 clean: its noise does not matter there, its content does
    other_noise = noise.clone()
    other_noise[:, :, :2] += 1.0
    moved = probe_x0(model, clean, other_noise, cond, SIGMAS, CHUNKS)
    assert torch.equal(moved[:, :, 1:], base[:, :, 1:]) and not torch.equal(moved[:, :, :1], base[:, :, :1])
    other_clean = clean.clone()
    other_clean[:, :, 1] += 1.0
    shifted = probe_x0(model, other_clean, noise, cond, SIGMAS, CHUNKS)
    assert not torch.allclose(shifted[:, :, 1:], base[:, :, 1:])
    # the bidirectional teacher's mode: every frame noised, one forward, so chunk 0's noise reaches chunk 1
    bi = probe_x0(model, clean, noise, cond, SIGMAS, CHUNKS, bidirectional=True)
    bi_moved = probe_x0(model, clean, other_noise, cond, SIGMAS, CHUNKS, bidirectional=True)
    assert not torch.allclose(bi[:, :, 1:], bi_moved[:, :, 1:])


def test_probe_reports_student_beside_teacher(setup):
    model, clean, noise, cond = setup
    probe = CameraProbe.build(model, clean, noise, cond, SIGMAS, CHUNKS, 2)
    student = camera_blind(model).train()
    row = probe.metrics(student)
    assert student.training  # the probe leaves the student's mode alone
    assert row["camera_gap_student"] == 0.0 and row["camera_swap_gap_student"] == 0.0
    teacher = camera_gap(model, clean, noise, cond, SIGMAS, CHUNKS)
    assert (row["camera_gap_teacher"], row["camera_swap_gap_teacher"]) == (
        teacher["removed"],
        teacher["swapped"],
    )
    same = probe.metrics(model)  # the teacher as the student: the same numbers
    assert same["camera_gap_student"] == pytest.approx(same["camera_gap_teacher"], rel=1e-6)
    assert same["camera_swap_gap_student"] == pytest.approx(same["camera_swap_gap_teacher"], rel=1e-6)
