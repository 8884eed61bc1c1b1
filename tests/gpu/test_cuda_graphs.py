"""CUDA-graph streaming on the GPU (skips without CUDA): `GraphedStreamStep`'s real capture and replay
give what eager streaming gives, over enough chunks that the KV window fills and later chunks replay
the graph captured for an earlier one at other frame offsets; with and without guidance, with the
Euler and the few-step schedule, on each GDN path, in fp32 and bf16, eager and compiled blocks.

    python -m pytest tests/gpu/test_cuda_graphs.py        # -k "not compiled" skips the compiling test
"""

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.graphs import GraphedStreamStep
from sanawm.model.ops import gdn
from sanawm.sampling import Conditions, EulerSchedule, FewStepSchedule, Guidance, sample_chunked
from tests.model.helpers import camera_inputs, randomize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

GRID = (4, 6)
CHUNKS = (4, 3, 3, 3, 3, 3, 2)  # a window of 2 chunks fills at the 4th; the 5th and 6th replay its graph
TEXT_TOKENS = 5
FP32_TOLERANCE = 1e-5  # max |Δ| / max |eager|; the same kernels replayed, TF32 off
BF16_TOLERANCE = 1e-2  # bf16 runs the row kernel in tf32; replays should still match to a few ulps
COMPILED_FP32_TOLERANCE = 1e-4  # compiled (fused, reordered) fp32 kernels against eager ones


@pytest.fixture
def gdn_kernel(request, monkeypatch):
    """The GDN path for one test (`gdn.gdn_scan`'s setting), through SANAWM_GDN_KERNEL."""
    gdn.set_gdn_kernel(None)
    monkeypatch.setenv("SANAWM_GDN_KERNEL", request.param)
    return request.param


@pytest.fixture(autouse=True)
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _setup(dtype):
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).eval().cuda().to(dtype)
    C, D, T = model.cfg.in_channels, model.cfg.caption_channels, sum(CHUNKS)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, C, T, *GRID, generator=g).cuda().to(dtype)
    first = torch.randn(1, C, 1, *GRID, generator=g).cuda().to(dtype)
    camera, plucker = (t.cuda().to(dtype) for t in camera_inputs(T, GRID))
    text = torch.randn(1, TEXT_TOKENS, D, generator=g).cuda().to(dtype)
    return model, noise, first, Conditions(text, None, camera, plucker)


def _negative(model, tokens, dtype):
    """A negative prompt of `tokens` tokens (None: the empty one)."""
    if tokens is None:
        return None
    g = torch.Generator().manual_seed(5)
    return torch.randn(1, tokens, model.cfg.caption_channels, generator=g).cuda().to(dtype)


def _sample(model, noise, first, cond, graphs, guidance, schedule, negative_tokens=None):
    C = model.cfg.in_channels
    negative = _negative(model, negative_tokens, noise.dtype)

    def renoise(i, step):  # the same re-noising draws in every run
        g = torch.Generator().manual_seed(100 * i + step)
        return torch.randn(1, C, CHUNKS[i], *GRID, generator=g).cuda().to(noise.dtype)

    return sample_chunked(
        model, noise, first, cond, CHUNKS, schedule, guidance, negative, kv_window=2, renoise=renoise,
        cuda_graphs=graphs,
    )  # fmt: skip


def _rel(a, b) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def _rel_l2(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


CASES = [  # guidance, negative prompt tokens (None: the empty one), schedule, graphs captured
    (Guidance(1.0), None, EulerSchedule(3, 3.0), 5),  # 4 window shapes + the shorter last chunk
    (Guidance(1.0), None, FewStepSchedule(), 5),
    (Guidance(3.0), 3, EulerSchedule(2, 3.0), 10),  # a shorter negative prompt: a shape per branch
    (Guidance(3.0), TEXT_TOKENS, EulerSchedule(2, 3.0), 5),  # both branches replay one graph
    (Guidance(3.0, drop_camera=True), TEXT_TOKENS, FewStepSchedule(), 10),
]


@pytest.mark.parametrize("gdn_kernel", ["auto", "rows"], indirect=True)
@pytest.mark.parametrize("guidance, negative_tokens, schedule, graphs", CASES)
def test_graphed_streaming_equals_eager_fp32(gdn_kernel, guidance, negative_tokens, schedule, graphs):
    """fp32: "auto" runs the PyTorch GDN scan inside the graph, "rows" the Triton row kernel."""
    model, noise, first, cond = _setup(torch.float32)
    eager = _sample(model, noise, first, cond, False, guidance, schedule, negative_tokens)
    step = GraphedStreamStep(model)
    graphed = _sample(model, noise, first, cond, step, guidance, schedule, negative_tokens)
    print(f"{gdn_kernel} {guidance} {schedule}: graphed vs eager max rel |Δ| = {_rel(graphed, eager):.1e}")
    assert _rel(graphed, eager) <= FP32_TOLERANCE
    assert step.stats.captured == graphs and step.stats.replays > step.stats.warmups
    again = _sample(model, noise, first, cond, step, guidance, schedule, negative_tokens)
    assert torch.equal(again, graphed) and step.stats.captured == graphs  # replays only


@pytest.mark.parametrize("gdn_kernel", ["auto"], indirect=True)
@pytest.mark.parametrize("guidance, negative_tokens, schedule, graphs", [CASES[1], CASES[3]])
def test_graphed_streaming_equals_eager_bf16_in_inference_mode(
    gdn_kernel, guidance, negative_tokens, schedule, graphs
):
    """bf16 on the row kernel, under inference_mode as the benchmarks run it (its tensors carry no version
    counters, so the wrapper's copy skipping goes by identity alone)."""
    model, noise, first, cond = _setup(torch.bfloat16)
    with torch.inference_mode():
        eager = _sample(model, noise, first, cond, False, guidance, schedule, negative_tokens)
        step = GraphedStreamStep(model)
        graphed = _sample(model, noise, first, cond, step, guidance, schedule, negative_tokens)
    print(f"bf16 {guidance} {schedule}: graphed vs eager max rel |Δ| = {_rel(graphed, eager):.1e}")
    assert _rel(graphed, eager) <= BF16_TOLERANCE
    assert step.stats.captured == graphs


def test_kept_outputs_survive_later_replays():
    """Two calls of one shape: the first call's prediction and state are unchanged by the second replay
    (they were copied out of graph memory), and both equal eager."""
    model, noise, _, cond = _setup(torch.float32)
    step = GraphedStreamStep(model, warmup=1)
    with torch.no_grad():
        state = model.init_stream_state(2)
        for start, size in ((0, 4), (4, 3), (7, 3), (10, 3)):  # the window is full from here on
            c = cond.frames(slice(start, start + size))
            x, t = noise[:, :, start : start + size], torch.zeros(1, size, device="cuda")
            _, state = model.stream_step(x, t, c.text, state, None, c.camera, c.plucker)
        c = cond.frames(slice(13, 16))
        calls = [(noise[:, :, 13:16] * s, torch.full((1, 3), 500.0 * s, device="cuda")) for s in (1, 2, 3, 4)]
        got = [step(x, t, c.text, state, None, c.camera, c.plucker) for x, t in calls]
        want = [model.stream_step(x, t, c.text, state, None, c.camera, c.plucker) for x, t in calls]
    assert step.stats.captured == 1 and step.stats.replays == 3
    for (out, new), (e_out, e_new) in zip(got, want, strict=True):
        assert _rel(out, e_out) <= FP32_TOLERANCE
        for a, b in zip(_tensors(new), _tensors(e_new), strict=True):
            assert _rel(a, b) <= FP32_TOLERANCE


def test_replays_never_wait_for_the_gpu():
    """Once every shape is captured, a stream only queues work: nothing in the sampler, the wrapper or the
    network synchronises with the GPU (σ stays on the host, RoPE angles go up from pinned memory, chunk
    ends are built on the device), so the GPU does not idle between replays. A failure here costs speed,
    not correctness; its traceback names the call that waited."""
    model, noise, first, cond = _setup(torch.float32)
    negative = _negative(model, TEXT_TOKENS, torch.float32)
    step = GraphedStreamStep(model)

    def sample():  # the Euler schedule: no re-noising draws (the tests' come from the host)
        schedule, guidance = EulerSchedule(2, 3.0), Guidance(3.0)
        return sample_chunked(
            model, noise, first, cond, CHUNKS, schedule, guidance, negative, kv_window=2, cuda_graphs=step
        )

    expected = sample()  # captures every shape
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = sample()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(got, expected) and step.stats.captured == 5


def _tensors(state):
    from sanawm.model.graphs import flatten

    return [t for t in flatten(state)[0] if t.numel()]


@pytest.mark.parametrize("gdn_kernel", ["auto"], indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_compiled_blocks_graphed_like_eager(gdn_kernel, dtype):
    """The fastest path (`sanawm generate --compile --cuda-graphs`, bench_720p.py --stream-graphs default):
    compiled blocks captured into graphs (the row kernel is a graph break inside each GDN block), against
    the eager stream and the compiled stream without graphs; compiles once per block kind and shape.

    In fp32 the compiled kernels only reorder sums, so the graphed rollout equals eager closely. In bf16
    the fused kernels round differently from eager ones and a rollout of 7 chunks carries that along
    (4.5e-2 max relative on this tiny random model on an H200, 1.4e-2 at 720p in bench_720p.py), so
    there the graphs must add no error of their own: the graphed rollout is as close to eager as the
    compiled one is. A missing or stale copy in or out of graph memory is an O(1) error and fails both."""
    model, noise, first, cond = _setup(dtype)
    guidance, negative_tokens, schedule, graphs = CASES[3]
    with torch.no_grad():
        eager = _sample(model, noise, first, cond, False, guidance, schedule, negative_tokens)
        model.compile_blocks()
        compiled = _sample(model, noise, first, cond, False, guidance, schedule, negative_tokens)
        step = GraphedStreamStep(model)
        graphed = _sample(model, noise, first, cond, step, guidance, schedule, negative_tokens)
    pairs = (("compiled", compiled, eager), ("graphed", graphed, eager), ("replay", graphed, compiled))
    for name, a, b in pairs:
        print(f"{dtype} {name}: max rel {_rel(a, b):.1e}, L2 rel {_rel_l2(a, b):.1e}")
    assert step.stats.captured == graphs
    if dtype == torch.float32:
        assert _rel(graphed, eager) <= COMPILED_FP32_TOLERANCE
    else:
        assert _rel_l2(graphed, eager) <= 2 * _rel_l2(compiled, eager) + 1e-3
