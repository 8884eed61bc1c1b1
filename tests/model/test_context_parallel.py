"""Context parallelism over 2 CPU processes (gloo) equals one process: outputs and gradients."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.ops.context_parallel import ContextParallel
from sanawm.model.ops.gdn import GDNInputs, gdn_parallel

from .helpers import camera_inputs, randomize

GRID, WORLD = (2, 3), 2
# Chunk boundaries deliberately not aligned with the rank boundary (frame 8); 15 frames split 8 + 7.
CHUNKS = {16: (4, 3, 3, 3, 3), 15: (4, 3, 3, 3, 2)}


def _inputs(dtype, T):
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).to(dtype)
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(1, model.cfg.in_channels, T, *GRID, generator=g, dtype=dtype)
    ts = torch.rand(1, T, generator=g) * 1000
    text = torch.randn(1, 3, model.cfg.caption_channels, generator=g, dtype=dtype)
    camera, plucker = (t.to(dtype) for t in camera_inputs(T, GRID))
    weight = torch.randn(lat.shape, generator=g, dtype=dtype)  # loss = sum(weight * out)
    g64 = torch.Generator().manual_seed(2)
    B, H, S, D = 1, 2, 5, 4
    gdn = [torch.rand(B, H, T, S, D, generator=g64, dtype=torch.float64) for _ in range(5)]
    gdn_extra = (
        torch.rand(B, H, T, S, generator=g64, dtype=torch.float64),
        0.5 + 0.5 * torch.rand(B, H, T, generator=g64, dtype=torch.float64),
    )
    return model, (lat, ts, text, camera, plucker), weight, gdn, gdn_extra


def _forward_backward(model, args, weight, chunks, cp=None):
    lat, ts, text, camera, plucker = args
    if cp is not None:
        lat, weight, camera = cp.local(lat, 2), cp.local(weight, 2), cp.local(camera, 1)
        ts, plucker = cp.local(ts, 1), cp.local(plucker, 2)
    model.zero_grad()
    out = model(lat, ts, text, None, camera, plucker, chunks=chunks, kv_window=2 if chunks else None, cp=cp)
    (out * weight).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), grads


def _gdn(gdn, extra, chunks, cp=None):
    q, k, v, qd, kd = gdn
    beta, decay = extra
    x = GDNInputs(q, k * 0.1, v, beta, decay, qd, kd * 0.1)
    if cp is not None:
        x = GDNInputs(*(cp.local(t, 2) for t in (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den)))
    out = gdn_parallel(x, chunks, None, scan_chunk=3, cp=cp)
    return out.num, out.den, out.state.num


def _worker(rank, folder, dtype, T):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=WORLD)
    model, args, weight, gdn, extra = _inputs(dtype, T)
    cp = ContextParallel.from_process_group(T)
    result = {}
    for name, chunks in (("bidirectional", None), ("chunk_causal", CHUNKS[T])):
        out, grads = _forward_backward(model, args, weight, chunks, cp)
        for g in grads.values():
            dist.all_reduce(g)
        result[name] = (cp.gather(out, 2), grads)
        num, den, last = _gdn(gdn, extra, chunks, cp)
        result[name + "_gdn"] = (cp.gather(num, 2), cp.gather(den, 2), last)
    if rank == 0:
        torch.save(result, f"{folder}/result.pt")
    dist.destroy_process_group()


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("T", [16, 15], ids=["even-split", "uneven-split"])
def test_two_ranks_equal_one_process(tmp_path, T, dtype=torch.float32):
    mp.spawn(_worker, args=(str(tmp_path), dtype, T), nprocs=WORLD, join=True)
    result = torch.load(tmp_path / "result.pt")
    model, args, weight, gdn, extra = _inputs(dtype, T)
    for name, chunks in (("bidirectional", None), ("chunk_causal", CHUNKS[T])):
        out, grads = _forward_backward(model, args, weight, chunks)
        cp_out, cp_grads = result[name]
        assert _rel(cp_out, out) <= 1e-5, name
        assert set(cp_grads) == set(grads)
        worst = max(_rel(cp_grads[n], g) for n, g in grads.items() if g.norm() > 0)
        assert worst <= 1e-5, (name, worst)
        num, den, last = _gdn(gdn, extra, chunks)
        cp_num, cp_den, cp_last = result[name + "_gdn"]
        assert _rel(cp_num, num) <= 1e-10 and _rel(cp_den, den) <= 1e-10 and _rel(cp_last, last) <= 1e-10


def test_wrong_local_frame_count_is_refused():
    model, (lat, ts, text, camera, plucker), *_ = _inputs(torch.float32, 16)
    cp = ContextParallel(rank=0, sizes=(8, 8))
    with pytest.raises(ValueError, match="each rank passes its 8 frames"):
        model(lat[:, :, :5], ts[:, :5], text, None, camera[:, :5], plucker[:, :, :5], cp=cp)


def test_split_is_as_even_as_possible():
    assert ContextParallel.split(121, 2) == (61, 60)
    assert ContextParallel.split(16, 4) == (4, 4, 4, 4) and ContextParallel.split(10, 4) == (3, 3, 2, 2)
    cp = ContextParallel(rank=1, sizes=(61, 60))
    assert (cp.frame_start, cp.frames, cp.total_frames, cp.world) == (61, 60, 121, 2)
    assert cp.local(torch.arange(121), 0).tolist() == list(range(61, 121))
    with pytest.raises(ValueError, match="at least 4 latent frames"):
        ContextParallel.split(3, 4)
