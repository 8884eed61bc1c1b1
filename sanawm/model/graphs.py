"""CUDA-graph replay of the streaming network call, `SanaWMTransformer.stream_step`.

A streamed minute is ~200 calls of the whole network on small chunks, and even with compiled blocks a
call spends most of its time launching kernels (docs/benchmarks.md). `GraphedStreamStep` is a drop-in
for `model.stream_step` that captures each call shape once as a `torch.cuda.CUDAGraph` and then
replays it: one launch per call.

    step = GraphedStreamStep(model)  # after model.compile_blocks(), if compiling
    out, state = step(latents, timestep, text, state, text_mask, camera, plucker)

How a call runs (the recipe of PyTorch's CUDA-graph notes):
1. Key. The call's inputs (latents, timestep, text, mask, camera, plucker), its RoPE angles and the
   StreamState are flattened (`flatten`) into tensors and a layout: dataclass types, None fields and
   plain values such as `kv_window` and how full the KV window is. The key is the layout, each tensor's
   shape, dtype and device, the GDN kernel setting and whether inference mode is on. `frames_done` and
   `chunks_done` are not in it: the frame offset reaches the network only through the RoPE angles, which
   go in as tensors (`stream_ropes`), and `chunks_done` not at all, so one graph serves every chunk of
   its shape. A stream meets 4 shapes per guidance branch (first chunk; sink alone; sink + 1 chunk; sink
   + 2 from the 4th chunk on, with `kv_window=2`), one more for a shorter last chunk.
2. Static inputs. Each key owns buffers shaped like its tensors; a call copies its tensors into them.
   A state tensor or angle table that is the very tensor its buffer received last time (same object,
   not modified in place since; inference-mode tensors keep no version counter, so there the state's
   immutability is trusted) is not copied again: a chunk's denoising calls and its commit share one
   state, and the KV window's sink is the same tensor for the whole stream.
3. Warm-up, capture, replay. The first `warmup` calls of a key run the network eagerly on the buffers
   on a side stream (torch.compile, Triton and cuDNN do their first-call work here, on the buffers' own
   layouts); the next call captures the graph, into one memory pool shared by every graph, and replays
   it; later calls only replay.
4. Outputs, and what is copied out of graph memory:
   - The prediction is cloned on every call. It lives in memory the next replay of the same graph
     overwrites (with guidance both branches may share a shape and so a graph: v_uncond would silently
     turn into v_cond before the two are combined) and in the pool every graph shares, where another
     graph's replay may reuse it.
   - The new state, with `keep_state=True` (ChunkSession's commit), is copied out tensor by tensor,
     except a tensor that is exactly one of the static input buffers (stream_step passes the KV window's
     sink and older chunks through): that one is returned as the caller's tensor the buffer was loaded
     from, which is what eager stream_step returns. Nothing returned points into a buffer or the pool.
   - `keep_state=False` (the denoising calls, whose state is thrown away) returns None for the state
     and copies only the prediction.

Limits. At most `max_graphs` graphs (default 16; a stream with guidance needs about 8): a call with a
new key beyond that runs eagerly (`model.stream_step`: same result, no speed-up) and the first such call
warns. Inference only. Each graph keeps its static inputs (a whole state) and outputs: for sana-wm-2.6b
at 720p about 1.3 GB of state in and 0.7 GB out per graph. A graph reads the weights where they were at
capture (update them in place, or make a new wrapper); what Python decides while the network is traced
(TF32 flags, compiled or eager blocks) is fixed at capture, so compile the blocks first.

Capture back-ends: `CudaCapture` (torch.cuda.CUDAGraph) and `EagerCapture`, a stand-in on any device
whose "replay" runs the captured call again, with the Python values captured then, and copies the
results into the first call's outputs. The CPU tests run everything else here on it, including that
kept outputs are overwritten and that a replay at another frame offset computes the same as eager.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from .ops.gdn import gdn_kernel_setting
from .ops.rope import Rope
from .state import StreamState

_TENSOR = ("tensor",)


def flatten(tree) -> tuple[list[torch.Tensor], tuple]:
    """The tensors of a tree of dataclasses, tuples, lists, tensors and plain values (None, bool, int,
    float, str), depth first, and its layout: a hashable record of everything else (types, field names,
    plain values, where the tensors sit) from which `unflatten` rebuilds the tree."""
    tensors: list[torch.Tensor] = []
    return tensors, _flatten(tree, tensors)


def _flatten(node, tensors: list) -> tuple:
    if isinstance(node, torch.Tensor):
        tensors.append(node)
        return _TENSOR
    if node is None or type(node) in (bool, int, float, str):
        return ("value", type(node), node)
    if type(node) in (tuple, list):
        return (type(node).__name__, tuple(_flatten(n, tensors) for n in node))
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        names = _field_names(type(node))
        return ("dataclass", type(node), names, tuple(_flatten(getattr(node, n), tensors) for n in names))
    raise TypeError(
        f"cannot flatten a {type(node).__name__}: the tree may hold dataclasses, tuples, lists, tensors "
        "and None / bool / int / float / str"
    )


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    fields = dataclasses.fields(cls)
    if not all(f.init for f in fields):
        raise TypeError(f"cannot flatten a {cls.__name__}: it has fields outside __init__")
    return tuple(f.name for f in fields)


def unflatten(tensors: list[torch.Tensor], layout: tuple):
    """The tree `flatten` took apart, holding `tensors` (in `flatten`'s order) where its tensors were."""
    if len(tensors) != _count(layout):
        raise ValueError(f"the layout holds {_count(layout)} tensors, got {len(tensors)}")
    return _build(layout, iter(tensors))


@functools.lru_cache(maxsize=256)
def _count(layout: tuple) -> int:
    kind = layout[0]
    if kind == "tensor":
        return 1
    if kind == "value":
        return 0
    children = layout[3] if kind == "dataclass" else layout[1]
    return sum(_count(c) for c in children)


def _build(layout: tuple, tensors):
    kind = layout[0]
    if kind == "tensor":
        return next(tensors)
    if kind == "value":
        return layout[2]
    if kind == "tuple":
        return tuple(_build(c, tensors) for c in layout[1])
    if kind == "list":
        return [_build(c, tensors) for c in layout[1]]
    cls, names, children = layout[1:]
    return cls(**{name: _build(c, tensors) for name, c in zip(names, children, strict=True)})


# ---- capture back-ends ------------------------------------------------------------------------------


class CudaCapture:
    """`torch.cuda.CUDAGraph` capture: warm-up calls on a side stream, every graph captured into one
    shared memory pool (graphs replay one at a time, so their intermediates may share memory; their
    outputs are copied out right after each replay, see `GraphedStreamStep`)."""

    def __init__(self, device) -> None:
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise ValueError(
                f"CUDA graphs need the network on a CUDA device, but it is on {device}: move it there "
                "(model.to('cuda'); `sanawm generate --device cuda`), or leave CUDA graphs off "
                "(cuda_graphs=False; no --cuda-graphs)"
            )
        self.device = device
        self._side: torch.cuda.Stream | None = None
        self._pool = None

    def warm(self, fn: Callable[[], tuple]) -> tuple:
        """fn() on the side stream, ordered after and before the current stream's work."""
        current = torch.cuda.current_stream(self.device)
        if self._side is None:
            self._side = torch.cuda.Stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            out = fn()
        current.wait_stream(self._side)
        return out

    def capture(self, fn: Callable[[], tuple]) -> tuple[Callable[[], None], tuple]:
        """Capture fn() (nothing runs yet); returns the replay and fn's outputs in graph memory."""
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        try:
            with torch.cuda.device(self.device), torch.cuda.graph(graph, pool=self._pool):
                out = fn()
        except RuntimeError as err:
            raise RuntimeError(
                f"capturing the streaming step as a CUDA graph failed: {err}\nSomething in the step "
                "waits for the GPU or copies from the host while it is captured (a .item(), a CPU tensor "
                "moved to the GPU); run without CUDA graphs (cuda_graphs=False; no --cuda-graphs) and "
                "report the traceback"
            ) from err
        return graph.replay, out


class EagerCapture:
    """A stand-in for `CudaCapture` on any device. "Capture" runs the call once and keeps its outputs;
    "replay" runs the captured call again (the same closure: Python values it captured, such as a
    template state's frames_done, stay those of the capture, as in a CUDA graph) and copies the results
    into the kept outputs (so what a caller held on to from an earlier call is overwritten, as graph
    memory would be). The CPU tests run `GraphedStreamStep` on it."""

    def warm(self, fn: Callable[[], tuple]) -> tuple:
        return fn()

    def capture(self, fn: Callable[[], tuple]) -> tuple[Callable[[], None], tuple]:
        out = fn()
        static, layout = flatten(out)

        def replay() -> None:
            fresh, fresh_layout = flatten(fn())
            if fresh_layout != layout:
                raise RuntimeError("a replayed call returned another layout than the captured one")
            for kept, new in zip(static, fresh, strict=True):
                if kept is not new:
                    kept.copy_(new)

        return replay, out


# ---- the wrapper --------------------------------------------------------------------------------------


@dataclass
class GraphStats:
    """What a `GraphedStreamStep` did: graphs captured, replays, eager warm-up calls, and eager calls past
    `max_graphs`."""

    captured: int = 0
    replays: int = 0
    warmups: int = 0
    eager: int = 0


@dataclass
class _Graph:
    """One key's static input buffers and the network call on them; its replay and static outputs once
    captured. `carried[i]`: buffer i holds a state tensor or angle table (immutable by contract), whose
    copy is skipped when `sources[i]` says it already holds that tensor."""

    buffers: list[torch.Tensor]
    call: Callable[[], tuple]
    carried: list[bool]
    sources: list = field(default_factory=list)  # per buffer: (weakref to its last source, version)
    warm_calls: int = 0
    replay: Callable[[], None] | None = None
    outputs: tuple | None = None


class GraphedStreamStep:
    """`model.stream_step` replayed as CUDA graphs, one per input shape (see the module docstring).

    Call it as `stream_step`, plus `keep_state`: False skips copying the new state out of graph memory
    and returns None for it (calls whose state is thrown away). `max_graphs`: graphs kept (calls of new
    shapes past it run eagerly, with one warning); `warmup`: eager calls of a shape before its capture;
    `capture`: the back-end (default `CudaCapture` on the model's device, which must be CUDA; the tests
    pass `EagerCapture()`). Inference only: call it under torch.no_grad() or torch.inference_mode()."""

    def __init__(self, model, max_graphs: int = 16, warmup: int = 2, capture=None) -> None:
        if max_graphs < 0 or warmup < 0:
            raise ValueError(f"max_graphs and warmup must be >= 0, got {max_graphs} and {warmup}")
        self.model, self.max_graphs, self.warmup = model, max_graphs, warmup
        self.device = next(model.parameters()).device
        self.capture = CudaCapture(self.device) if capture is None else capture
        self.stats = GraphStats()
        self._graphs: dict[tuple, _Graph] = {}
        self._ropes_key, self._ropes = None, None
        self._warned = False

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        """Drop every graph and its buffers (their memory goes back to PyTorch's allocator)."""
        self._graphs.clear()
        self._ropes_key, self._ropes = None, None

    def __call__(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        state: StreamState,
        text_mask: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        plucker: torch.Tensor | None = None,
        *,
        keep_state: bool = True,
    ) -> tuple[torch.Tensor, StreamState | None]:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "CUDA-graph streaming is for inference: call it under torch.no_grad() or "
                "torch.inference_mode() (sample_chunked and the pipelines do)"
            )
        ropes = self._stream_ropes(latents, state)
        inputs, input_layout = flatten((latents, timestep, text, text_mask, camera, plucker))
        carried, carried_layout = flatten((ropes, replace(state, frames_done=0, chunks_done=0)))
        tensors = inputs + carried
        key = (
            input_layout,
            carried_layout,
            tuple((t.shape, t.dtype, t.device) for t in tensors),
            gdn_kernel_setting(),
            torch.is_inference_mode_enabled(),
        )
        graph = self._graphs.get(key)
        if graph is None:
            if len(self._graphs) >= self.max_graphs:
                return self._eager(latents, timestep, text, state, text_mask, camera, plucker, keep_state)
            graph = self._graphs[key] = self._new_graph(tensors, input_layout, carried_layout, len(inputs))
        self._load(graph, tensors)
        if graph.replay is None and graph.warm_calls < self.warmup:
            result = self.capture.warm(graph.call)
            graph.warm_calls += 1
            self.stats.warmups += 1
        else:
            if graph.replay is None:
                graph.replay, graph.outputs = self.capture.capture(graph.call)
                self.stats.captured += 1
            graph.replay()
            self.stats.replays += 1
            result = graph.outputs
        return self._outputs(result, graph, tensors, state, latents.shape[2], keep_state)

    # ---- pieces ---------------------------------------------------------------------------------------

    def _stream_ropes(self, latents, state):
        """The call's RoPE angles, reused while the grid and frame offset stay (a chunk's calls). For a
        CUDA network they are built on the host and copied from pinned memory without waiting, so a new
        chunk does not stall the replays queued before it."""
        key = (tuple(latents.shape[2:]), state.frames_done, latents.device)
        if key != self._ropes_key:
            if latents.device.type == "cuda":
                host, device = self.model.stream_ropes(latents, state, device="cpu"), latents.device
                ropes = tuple(Rope(_to_device(r.cos, device), _to_device(r.sin, device)) for r in host)
            else:
                ropes = self.model.stream_ropes(latents, state)
            self._ropes_key, self._ropes = key, ropes
        return self._ropes

    def _new_graph(self, tensors, input_layout, carried_layout, num_inputs: int) -> _Graph:
        for t in tensors:
            if t.device != self.device:
                raise ValueError(
                    f"an input or state tensor {tuple(t.shape)} is on {t.device} but the network on "
                    f"{self.device}; move the inputs to {self.device}"
                )
        buffers = [torch.empty_like(t) for t in tensors]
        latents, timestep, text, text_mask, camera, plucker = unflatten(buffers[:num_inputs], input_layout)
        ropes, template = unflatten(buffers[num_inputs:], carried_layout)

        def call():
            return self.model.stream_step(
                latents, timestep, text, template, text_mask, camera, plucker, ropes=ropes
            )

        carried = [False] * num_inputs + [True] * (len(tensors) - num_inputs)
        return _Graph(buffers, call, carried, sources=[None] * len(tensors))

    @staticmethod
    def _load(graph: _Graph, tensors: list[torch.Tensor]) -> None:
        """Copy the call's tensors into the buffers, skipping carried ones a buffer already holds."""
        for i, (buffer, src) in enumerate(zip(graph.buffers, tensors, strict=True)):
            if graph.carried[i]:
                version = None if src.is_inference() else src._version
                last = graph.sources[i]
                if last is not None and last[0]() is src and last[1] == version:
                    continue
                graph.sources[i] = (weakref.ref(src), version)
            buffer.copy_(src)

    @staticmethod
    def _outputs(result, graph: _Graph, tensors, state: StreamState, frames: int, keep_state: bool):
        """The prediction cloned, and (keep_state) the state with every tensor out of graph memory."""
        out, new_state = result
        if (new_state.frames_done, new_state.chunks_done) != (frames, 1):
            raise RuntimeError(
                "stream_step's bookkeeping changed: GraphedStreamStep expects a call from frames_done 0 "
                f"to return frames_done {frames} (its frames) and chunks_done 1, got "
                f"{new_state.frames_done} and {new_state.chunks_done}; update graphs.py to match"
            )
        out = out.clone()
        if not keep_state:
            return out, None
        own = {_view(b): src for b, src in zip(graph.buffers, tensors, strict=True)}
        leaves, layout = flatten(new_state)
        leaves = [_own_or_clone(own, t) for t in leaves]
        new_state = unflatten(leaves, layout)
        return out, replace(
            new_state, frames_done=state.frames_done + frames, chunks_done=state.chunks_done + 1
        )

    def _eager(self, latents, timestep, text, state, text_mask, camera, plucker, keep_state):
        if not self._warned:
            warnings.warn(
                f"GraphedStreamStep holds its {self.max_graphs} graphs (max_graphs): calls of new shapes "
                "run eagerly from here on (same results, no speed-up); raise max_graphs to capture them",
                stacklevel=3,
            )
            self._warned = True
        self.stats.eager += 1
        out, new_state = self.model.stream_step(
            latents, timestep, text, state, text_mask, camera, plucker, ropes=self._ropes
        )
        return out, (new_state if keep_state else None)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on a CUDA device through pinned memory: an asynchronous copy (PyTorch keeps the pinned
    block until the copy has run)."""
    return t.pin_memory().to(device, non_blocking=True)


def _own_or_clone(own: dict, t: torch.Tensor) -> torch.Tensor:
    """The caller's tensor when t is exactly a static input buffer (loaded from it), else a copy of t."""
    src = own.get(_view(t))
    return t.clone() if src is None else src


def _view(t: torch.Tensor) -> tuple:
    """Where a tensor's elements are: two tensors with the same key read the same memory the same way."""
    return t.data_ptr(), t.shape, t.stride(), t.dtype, t.device


__all__ = ["CudaCapture", "EagerCapture", "GraphStats", "GraphedStreamStep", "flatten", "unflatten"]
