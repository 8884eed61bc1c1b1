"""ODE distillation: stored states are the teacher sampler's, the dataset build is deterministic and
resumable, and the regression shows each chunk the teacher's clean context as at inference."""

import json

import pytest
import torch

from sanawm.distill import TrajectoryDataset, build_trajectories, ode_regression_loss, teacher_trajectory
from sanawm.distill.ode import SigmaSchedule, merged_sigmas
from sanawm.model import SanaWMTransformer, get_preset
from sanawm.sampling import (
    ChunkSession,
    Conditions,
    EulerSchedule,
    FewStepSchedule,
    Guidance,
    sample_bidirectional,
    sample_chunked,
)
from sanawm.training.data import SyntheticClips, derive_seed
from tests.model.helpers import camera_inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")
KEEP = FewStepSchedule().sigmas().tolist()  # 1, 0.96, 0.889, 0.727, 0
T, GRID, CHUNKS = 5, (2, 2), (2, 3)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).eval()
    g = torch.Generator().manual_seed(1)
    C = model.cfg.in_channels
    noise, first = torch.randn(1, C, T, *GRID, generator=g), torch.randn(1, C, 1, *GRID, generator=g)
    camera, plucker = camera_inputs(T, GRID)
    cond = Conditions(torch.randn(1, 3, model.cfg.caption_channels, generator=g), None, camera, plucker)
    return model, noise, first, cond


def test_states_are_points_of_the_teacher_sampler(setup):
    model, noise, first, cond = setup
    schedule, guidance = EulerSchedule(steps=3, shift=3.0), Guidance(2.0, drop_text=True, drop_camera=True)
    states = teacher_trajectory(model, noise, first, cond, CHUNKS, schedule, KEEP, guidance, kv_window=1)
    assert states.shape == (1, 5, *noise.shape[1:])
    grid = merged_sigmas(schedule.sigmas(), KEEP)
    assert set(round(s, 5) for s in schedule.sigmas().tolist()) <= set(round(s, 5) for s in grid)
    assert len(grid) == 4 + 3  # the teacher's 3 steps + the 3 inner student levels
    assert torch.equal(states[:, 0, :, 1:], noise[:, :, 1:]) and all(
        torch.equal(s[:, :1], first[0]) for s in states[0]
    )

    # the final states are the teacher's sample, by the reference (non-streaming) sampler
    full = sample_chunked(
        model, noise, first, cond, CHUNKS, SigmaSchedule(tuple(grid)), guidance, kv_window=1, streaming=False
    )
    assert (states[:, -1] - full).abs().max().item() <= 1e-5
    # every intermediate state: the reference sampler, stopped at that σ, after the clean earlier chunks
    start = 0
    for j, size in enumerate(CHUNKS):
        for k, keep in enumerate(KEEP[1:-1], start=1):
            session = ChunkSession(model, [guidance.unconditional(cond), cond], guidance, 1, streaming=False)
            if start:
                session.commit(full[:, :, :start])
            x = noise[:, :, start : start + size].clone()
            if start == 0:
                x[:, :, :1] = first
            upto = SigmaSchedule(tuple(s for s in grid if s >= keep - 1e-6))
            want = session.denoise(x, upto, start == 0)
            assert (states[:, k, :, start : start + size] - want).abs().max().item() <= 1e-5, (j, k)
        start += size


def test_bidirectional_teacher_states(setup):
    model, noise, first, cond = setup
    schedule, guidance = EulerSchedule(steps=2, shift=3.0), Guidance(2.0)
    states = teacher_trajectory(model, noise, first, cond, None, schedule, KEEP, guidance)
    grid = merged_sigmas(schedule.sigmas(), KEEP)
    for k, keep in enumerate(KEEP[1:], start=1):
        upto = SigmaSchedule(tuple(s for s in grid if s >= keep - 1e-6))
        want = sample_bidirectional(model, noise, first, cond, upto, guidance)
        assert (states[:, k] - want).abs().max().item() <= 1e-5, k


def _build(folder, model, samples=3, **kw):
    source = SyntheticClips(model.cfg.in_channels, T, (64, 64), 0, model.cfg.caption_channels, seed=3)
    args = dict(
        samples=samples,
        latent_frames=T,
        chunks=CHUNKS,
        schedule=EulerSchedule(2, 3.0),
        keep_sigmas=KEEP,
        guidance=Guidance(1.0),
        kv_window=2,
        seed=7,
        settings={"teacher": "tiny"},
        shard_size=2,
        batch_size=2,
    )
    return build_trajectories(folder, model, source, **{**args, **kw}), source


def test_build_is_deterministic_resumable_and_refuses_other_settings(setup, tmp_path):
    model = setup[0]
    folder, source = _build(tmp_path / "a", model)
    data = TrajectoryDataset(folder)
    assert len(data) == 3 and sorted(p.name for p in folder.glob("shard_*")) == [
        "shard_00000.safetensors",
        "shard_00001.safetensors",
    ]
    # sample 2 = the teacher on data item 2 with noise seeded by (seed, 2)
    item = source[2]
    C = model.cfg.in_channels
    noise = torch.randn(C, T, *GRID, generator=torch.Generator().manual_seed(derive_seed(7, 2, 11)))
    cond = Conditions(
        item["text"][None], item["text_mask"][None], item["camera"][None], item["plucker"][None]
    )
    want = teacher_trajectory(
        model,
        noise[None],
        item["latents"][None, :, :1],
        cond,
        CHUNKS,
        EulerSchedule(2, 3.0),
        KEEP,
        kv_window=2,
    )[0]
    assert torch.allclose(data[2]["states"], want, atol=1e-6)
    assert torch.equal(data[2]["camera"], item["camera"])

    # interrupted after shard 0: the rerun writes the rest, equal to an uninterrupted build
    before = {k: data[k]["states"] for k in range(3)}
    (folder / "shard_00001.safetensors").unlink()
    (folder / "index.json").unlink()
    mtime = (folder / "shard_00000.safetensors").stat().st_mtime_ns
    _build(folder, model)
    again = TrajectoryDataset(folder)
    assert (folder / "shard_00000.safetensors").stat().st_mtime_ns == mtime  # kept, not redone
    assert all(torch.equal(again[k]["states"], before[k]) for k in range(3))

    with pytest.raises(ValueError, match="other settings"):
        _build(folder, model, schedule=EulerSchedule(3, 3.0))
    assert json.loads((folder / "index.json").read_text())["samples"] == 3


def test_regression_sees_clean_teacher_context(setup):
    model, noise, first, cond = setup
    student = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1, seed=3)
    states = teacher_trajectory(model, noise, first, cond, CHUNKS, EulerSchedule(2, 3.0), KEEP, kv_window=1)
    states = torch.cat([states, states.flip(0)])  # B = 2
    cond2 = Conditions(
        cond.text.expand(2, -1, -1),
        None,
        cond.camera.expand(2, -1, -1),
        cond.plucker.expand(2, -1, -1, -1, -1),
    )
    levels = torch.tensor([[0, 3], [2, 1]])
    sigmas = torch.tensor(KEEP)
    loss = ode_regression_loss(student, states, sigmas, levels, cond2, CHUNKS, kv_window=1)

    # by hand with the chunk-causal forward: chunk j at its level, earlier chunks the clean teacher sample
    final, total, start = states[:, -1], 0.0, 0
    for j, size in enumerate(CHUNKS):
        x = torch.stack([states[b, levels[b, j], :, start : start + size] for b in range(2)])
        sig = sigmas[levels[:, j]]
        t = torch.cat([torch.zeros(2, start), (sig * 1000)[:, None].expand(2, size)], 1)
        if start == 0:
            t[:, 0] = 0
        v = student(
            torch.cat([final[:, :, :start], x], 2),
            t,
            cond2.text,
            None,
            cond2.camera[:, : start + size],
            cond2.plucker[:, :, : start + size],
            chunks=CHUNKS[: j + 1],
            kv_window=1,
        )[:, :, start:]
        lo = 1 if start == 0 else 0
        x0 = x[:, :, lo:] - sig[:, None, None, None, None] * v[:, :, lo:]
        total += (x0 - final[:, :, start + lo : start + size]).square().mean(dim=(1, 3, 4)).sum(1).mean() / (
            T - 1
        )
        start += size
    assert loss.item() == pytest.approx(total.item(), rel=1e-4)

    # chunk-by-chunk backward gives the gradient of the whole loss
    loss.backward()
    whole = [p.grad.clone() for p in student.parameters() if p.grad is not None]
    student.zero_grad()
    ode_regression_loss(student, states, sigmas, levels, cond2, CHUNKS, kv_window=1, backward=True)
    split = [p.grad for p in student.parameters() if p.grad is not None]
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(whole, split, strict=True))
    with pytest.raises(ValueError, match="levels"):
        ode_regression_loss(student, states, sigmas, torch.tensor([[0, 4], [0, 0]]), cond2, CHUNKS)
