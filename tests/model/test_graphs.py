"""CUDA-graph streaming (`sanawm.model.graphs`) on the CPU: flatten / unflatten of real stream states, the
graph keys, and the whole wrapper on the `EagerCapture` stand-in, whose replay re-runs the captured call
with the Python values of its capture and overwrites the outputs kept from earlier calls, as a CUDA
graph would. tests/gpu/test_cuda_graphs.py runs the real capture."""

from dataclasses import fields, is_dataclass, replace

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.graphs import EagerCapture, GraphedStreamStep, flatten, unflatten
from sanawm.model.state import KVWindow
from sanawm.sampling import ChunkSession, Conditions, EulerSchedule, FewStepSchedule, Guidance, sample_chunked

from .helpers import camera_inputs, randomize

GRID = (2, 3)
CHUNKS = (4, 3, 3, 3, 3, 2)  # the window (2 chunks) fills at the 4th chunk; the last is shorter
T = sum(CHUNKS)
NO_GUIDANCE, EULER = Guidance(1.0), EulerSchedule(2, 3.0)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).eval()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, model.cfg.in_channels, T, *GRID, generator=g)
    first = torch.randn(1, model.cfg.in_channels, 1, *GRID, generator=g)
    camera, plucker = camera_inputs(T, GRID)
    text = torch.randn(1, 3, model.cfg.caption_channels, generator=g)
    return model, noise, first, Conditions(text, None, camera, plucker)


def _states(model, cond, kv_window, chunks=CHUNKS):
    """Every state of a stream (the initial one first), committing random chunks."""
    g = torch.Generator().manual_seed(2)
    states, start = [model.init_stream_state(kv_window)], 0
    with torch.no_grad():
        for size in chunks:
            c = cond.frames(slice(start, start + size))
            x = torch.randn(1, model.cfg.in_channels, size, *GRID, generator=g)
            _, s = model.stream_step(
                x, torch.zeros(1, size), c.text, states[-1], c.text_mask, c.camera, c.plucker
            )
            states.append(s)
            start += size
    return states


def _same(a, b) -> bool:
    """a and b are the same tree: equal types and plain values, and the very same tensors."""
    if isinstance(a, torch.Tensor):
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    return a == b


def _rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("kv_window", [2, 1, None])
@pytest.mark.parametrize("with_camera", [True, False])
def test_flatten_round_trips_real_stream_states(setup, kv_window, with_camera):
    model, _, _, cond = setup
    if not with_camera:
        cond = replace(cond, camera=None, plucker=None)  # the camera-branch fields stay None
    for state in _states(model, cond, kv_window):
        tensors, layout = flatten(state)
        assert _same(unflatten(tensors, layout), state)
        assert sum(t.numel() * t.element_size() for t in tensors) == state.nbytes()
        hash(layout)
        again, layout2 = flatten(
            replace(state, blocks=unflatten([t.clone() for t in tensors], layout).blocks)
        )
        assert layout2 == layout and all(torch.equal(a, b) for a, b in zip(again, tensors, strict=True))
        assert flatten(replace(state, frames_done=state.frames_done + 1))[1] != layout
    assert len(flatten(_states(model, cond, kv_window)[0])[0]) == 0  # the initial state holds no tensors


def test_flatten_keeps_plain_values_and_refuses_other_types():
    window = KVWindow(2, (torch.zeros(1), torch.ones(1)), ())
    tensors, layout = flatten([window, None, 3, 2.5, "x", True])
    rebuilt = unflatten(tensors, layout)
    assert _same(rebuilt, [window, None, 3, 2.5, "x", True])
    assert flatten(1)[1] != flatten(True)[1] != flatten(1.0)[1]  # 1 == True == 1.0, but not as layouts
    with pytest.raises(TypeError, match="cannot flatten a dict"):
        flatten({"a": torch.zeros(1)})
    with pytest.raises(ValueError, match="holds 2 tensors, got 1"):
        unflatten(tensors[:1], layout)


def _sample(model, noise, first, cond, graphs, guidance=NO_GUIDANCE, schedule=EULER, **kw):
    def renoise(i, step):
        return torch.randn(
            1, model.cfg.in_channels, CHUNKS[i], *GRID, generator=torch.Generator().manual_seed(i)
        )

    return sample_chunked(
        model, noise, first, cond, CHUNKS, schedule, guidance, kv_window=2, renoise=renoise,
        cuda_graphs=graphs, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "guidance, negative_tokens, schedule, graphs",
    [
        (Guidance(1.0), None, EulerSchedule(2, 3.0), 5),  # 4 window shapes + the shorter last chunk
        (Guidance(1.0), None, FewStepSchedule(), 5),
        (Guidance(3.0), 2, EulerSchedule(2, 3.0), 10),  # a shorter negative prompt: a shape per branch
        (Guidance(3.0), 3, EulerSchedule(2, 3.0), 5),  # same shapes: both branches replay one graph
        (Guidance(3.0, drop_camera=True), 3, FewStepSchedule(), 10),
    ],
)
def test_graphed_sampling_equals_eager(setup, guidance, negative_tokens, schedule, graphs):
    """Every chunk after the 4th replays the graph captured for the 4th, at another frame offset; with
    guidance, v_uncond is kept while v_cond replays (the same graph when the shapes match)."""
    model, noise, first, cond = setup
    negative = None
    if negative_tokens is not None:
        negative = torch.randn(
            1, negative_tokens, model.cfg.caption_channels, generator=torch.Generator().manual_seed(5)
        )
    kw = dict(guidance=guidance, schedule=schedule, negative_text=negative)
    eager = _sample(model, noise, first, cond, False, **kw)
    step = GraphedStreamStep(model, capture=EagerCapture())
    graphed = _sample(model, noise, first, cond, step, **kw)
    assert _rel(graphed, eager) <= 1e-6
    branches = 2 if guidance.enabled else 1
    calls = sum(len(schedule.sigmas()) for _ in CHUNKS) * branches  # steps + the commit, per chunk
    assert step.num_graphs == step.stats.captured == graphs
    assert step.stats.warmups + step.stats.replays == calls and step.stats.eager == 0
    again = _sample(model, noise, first, cond, step, **kw)  # the graphs are kept: replays only
    assert torch.equal(again, graphed) and step.stats.captured == graphs


def test_context_noise_and_a_session_of_graphs_equal_eager(setup):
    model, noise, first, cond = setup

    def context_noise(i):
        return torch.randn(
            1, model.cfg.in_channels, CHUNKS[i], *GRID, generator=torch.Generator().manual_seed(9 + i)
        )

    kw = dict(context_sigma=0.05, context_noise=context_noise, guidance=Guidance(2.0))
    eager = _sample(model, noise, first, cond, False, **kw)
    graphed = _sample(
        model, noise, first, cond, GraphedStreamStep(model, warmup=0, capture=EagerCapture()), **kw
    )
    assert _rel(graphed, eager) <= 1e-6


def test_the_stand_in_replays_captured_python_values(setup):
    """What the CPU tests rely on: a network that read frames_done (instead of the RoPE angles) would come
    out wrong under the stand-in, as it would under a real graph."""
    model, noise, first, cond = setup

    class Leaky(SanaWMTransformer):
        def stream_step(self, latents, timestep, text, state, *args, **kw):
            out, new = super().stream_step(latents, timestep, text, state, *args, **kw)
            return out + state.frames_done, new

    leaky = Leaky(model.cfg)
    leaky.load_state_dict(model.state_dict())
    eager = _sample(leaky, noise, first, cond, False)
    graphed = _sample(leaky, noise, first, cond, GraphedStreamStep(leaky, capture=EagerCapture()))
    assert _rel(graphed, eager) > 1e-3


def _chunk(model, cond, state, start, size, seed):
    g = torch.Generator().manual_seed(seed)
    c = cond.frames(slice(start, start + size))
    x = torch.randn(1, model.cfg.in_channels, size, *GRID, generator=g)
    return (x, torch.rand(1, size, generator=g) * 1000, c.text, state, c.text_mask, c.camera, c.plucker)


def test_returned_tensors_are_never_graph_memory(setup):
    """Predictions and kept states survive later replays; states pass the KV window's old entries
    through as the caller's own tensors, as eager stream_step does; nothing returned shares memory with
    a static input buffer or a static output."""
    model, _, _, cond = setup
    states = _states(model, cond, 2, CHUNKS[:4])  # the window is full from the 4th chunk on
    step = GraphedStreamStep(model, warmup=0, capture=EagerCapture())
    with torch.no_grad():
        a_args = _chunk(model, cond, states[3], 10, 3, seed=1)
        b_args = _chunk(model, cond, states[3], 10, 3, seed=2)
        a_out, a_state = step(*a_args)
        b_out, b_state = step(*b_args)
        c_out, c_none = step(*_chunk(model, cond, states[3], 10, 3, seed=3), keep_state=False)
        expected = [model.stream_step(*args) for args in (a_args, b_args)]
    assert step.num_graphs == 1 and step.stats.replays == 3 and c_none is None
    for (out, state), (e_out, e_state) in zip([(a_out, a_state), (b_out, b_state)], expected, strict=True):
        assert torch.equal(out, e_out)
        got, want = flatten(state), flatten(e_state)
        assert got[1] == want[1] and all(torch.equal(x, y) for x, y in zip(got[0], want[0], strict=True))
    softmax = next(i for i, kind in enumerate(model.cfg.block_kinds) if kind == "softmax")
    old, new = states[3].blocks[softmax].attn.kv, a_state.blocks[softmax].attn.kv
    assert new.sink[0] is old.sink[0] and new.recent[0][1] is old.recent[1][1]
    graph = next(iter(step._graphs.values()))
    graph_memory = {t.data_ptr() for t in graph.buffers + flatten(graph.outputs)[0]}
    returned = [a_out, b_out, c_out] + flatten(a_state)[0] + flatten(b_state)[0]
    assert not {t.data_ptr() for t in returned} & graph_memory


def test_a_state_changed_in_place_is_copied_again(setup):
    """Carried tensors already in their buffer are not copied again, unless modified in place since."""
    model, _, _, cond = setup
    state = _states(model, cond, 2, CHUNKS[:2])[-1]
    step = GraphedStreamStep(model, warmup=0, capture=EagerCapture())
    args = _chunk(model, cond, state, 7, 3, seed=4)
    with torch.no_grad():
        first, _ = step(*args)
        next(t for t in flatten(state)[0] if t.dtype.is_floating_point).mul_(1.5)
        second, _ = step(*args)
        expected, _ = model.stream_step(*args)
    assert torch.equal(second, expected) and not torch.equal(first, second)


def test_past_max_graphs_calls_run_eagerly_with_one_warning(setup):
    model, noise, first, cond = setup
    eager = _sample(model, noise, first, cond, False)
    step = GraphedStreamStep(model, max_graphs=2, capture=EagerCapture())
    with pytest.warns(UserWarning, match="max_graphs") as caught:
        graphed = _sample(model, noise, first, cond, step)
    assert len(caught) == 1 and step.num_graphs == 2 and step.stats.eager > 0
    assert _rel(graphed, eager) <= 1e-6
    step.clear()
    assert step.num_graphs == 0


def test_errors_name_the_fix(setup):
    model, noise, first, cond = setup
    with pytest.raises(ValueError, match="CUDA device.*--device cuda"):
        GraphedStreamStep(model)  # the real capture, on a CPU model
    with pytest.raises(ValueError, match="streaming=True"):
        sample_chunked(model, noise, first, cond, CHUNKS, streaming=False, cuda_graphs=True)
    other = GraphedStreamStep(randomize(SanaWMTransformer(model.cfg)), capture=EagerCapture())
    with pytest.raises(ValueError, match="another model"):
        ChunkSession(model, [cond], Guidance(1.0), 2, True, cuda_graphs=other)
    with pytest.raises(ValueError, match="True, False or a GraphedStreamStep"):
        ChunkSession(model, [cond], Guidance(1.0), 2, True, cuda_graphs="yes")
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedStreamStep(model, max_graphs=-1, capture=EagerCapture())
    step = GraphedStreamStep(model, capture=EagerCapture())
    args = _chunk(model, cond, model.init_stream_state(), 0, 4, seed=0)
    with pytest.raises(RuntimeError, match="no_grad"):
        step(*args)
    with torch.no_grad(), pytest.raises(ValueError, match="is on meta but the network on cpu"):
        step(args[0].to("meta"), *args[1:])
