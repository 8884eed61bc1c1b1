"""Which GDN scan `gdn_scan` runs (`gdn_path`), on the CPU: CUDA tensors and Triton are faked, so this runs
in the CPU CI. The defaults are the fastest measured paths (docs/benchmarks.md, "Which GDN path runs");
change this table only with new measurements."""

from types import SimpleNamespace

import pytest
import torch

from sanawm.model.ops import gdn, gdn_chunk, gdn_triton, gdn_triton_rows
from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_path, gdn_scan
from sanawm.training.config import load_config

BF16, FP16, FP32, FP64 = torch.bfloat16, torch.float16, torch.float32, torch.float64


def fake(shape, dtype=FP32, cuda=True, grad=False):
    """Only what `gdn_path` reads of a tensor."""
    return SimpleNamespace(shape=shape, dtype=dtype, is_cuda=cuda, requires_grad=grad)


def inputs(dtype=BF16, cuda=True, grad=False, D=112, numerator_only=False, T=5):
    """The network's dtypes: q, k, v (and q_den, k_den) in `dtype`, the gates fp32."""
    B, H, S = 1, 2, 16
    qk = [fake((B, H, T, S, D), dtype, cuda, grad) for _ in range(3)]
    gates = [fake((B, H, T, S), FP32, cuda, grad), fake((B, H, T), FP32, cuda, grad)]
    den = [None, None] if numerator_only else [fake((B, H, T, S, D), dtype, cuda, grad) for _ in range(2)]
    return GDNInputs(*qk, *gates, *den)


@pytest.fixture(autouse=True)
def triton_present(monkeypatch):
    """Both kernels importable, the setting from a clean environment."""
    monkeypatch.setattr(gdn_triton, "AVAILABLE", True)
    monkeypatch.setattr(gdn_triton_rows, "AVAILABLE", True)
    monkeypatch.delenv("SANAWM_GDN_KERNEL", raising=False)
    gdn.set_gdn_kernel(None)
    yield
    gdn.set_gdn_kernel(None)


# (setting, inputs' dtype, needs gradients, expected path) on CUDA, one rank
TABLE = [
    ("auto", BF16, False, "rows"),  # inference, 16-bit: the row kernel (1.4x the PyTorch scan)
    ("auto", FP16, False, "rows"),
    ("auto", FP32, False, "pytorch"),  # the row kernel is 7x slower on fp32
    ("auto", BF16, True, "pytorch"),  # training: the PyTorch scan (the kernels train at 0.36x)
    ("auto", FP32, True, "pytorch"),
    ("rows", FP32, False, "rows"),
    ("rows", BF16, False, "rows"),
    ("rows", BF16, True, "pytorch"),  # no backward
    ("memory", BF16, True, "memory"),  # opt-in: half the activation memory
    ("memory", FP32, True, "memory"),
    ("memory", BF16, False, "memory"),
    ("pytorch", BF16, False, "pytorch"),
    ("pytorch", BF16, True, "pytorch"),
]


@pytest.mark.parametrize("setting,dtype,grad,expected", TABLE)
def test_path_per_setting(setting, dtype, grad, expected):
    assert gdn_path(inputs(dtype, grad=grad), None, None, setting) == expected
    gdn.set_gdn_kernel(setting)
    assert gdn_path(inputs(dtype, grad=grad)) == expected


def test_default_is_auto_and_numerator_only_and_state_follow_it():
    assert gdn.gdn_kernel_setting() == "auto"
    assert gdn_path(inputs(BF16, numerator_only=True)) == "rows"
    state = GDNState(fake((1, 2, 112, 112)), fake((1, 2, 112)))
    assert gdn_path(inputs(BF16), state) == "rows"
    trained_state = GDNState(fake((1, 2, 112, 112), grad=True), None)  # a state that needs gradients
    assert gdn_path(inputs(BF16), trained_state) == "pytorch"


def test_auto_traces_the_chunk_scan_into_compiled_streaming_steps(monkeypatch):
    """While torch.compile traces, "auto" keeps short calls (a streaming chunk) in the graph on the chunk
    scan for 16-bit inputs (the 60 s 720p stream, compiled and graphed, one H100: 10.48 s against 11.37 s
    on the PyTorch scan), on the PyTorch scan for fp32; longer calls, eager calls and explicit settings
    are unchanged."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    frames = gdn.COMPILED_SCAN_FRAMES
    assert gdn_path(inputs(BF16, T=3)) == "chunk"
    assert gdn_path(inputs(FP16, T=frames)) == "chunk"
    assert gdn_path(inputs(FP32, T=3)) == "pytorch"
    monkeypatch.setattr(gdn_chunk, "CUDA_PRODUCTS", False)  # a torch without bmm's out_dtype
    assert gdn_path(inputs(BF16, T=3)) == "pytorch"
    assert gdn_path(inputs(BF16, T=frames + 1)) == "rows"
    assert gdn_path(inputs(BF16, T=3), None, None, "rows") == "rows"
    assert gdn_path(inputs(BF16, T=3), None, None, "memory") == "memory"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: False)
    assert gdn_path(inputs(BF16, T=3)) == "rows"


def test_no_grad_mode_counts_as_inference():
    with torch.no_grad():
        assert gdn_path(inputs(BF16, grad=True)) == "rows"


@pytest.mark.parametrize("setting", ["auto", "rows", "memory"])
def test_pytorch_where_no_kernel_applies(setting, monkeypatch):
    assert gdn_path(inputs(BF16, cuda=False), None, None, setting) == "pytorch"  # off CUDA
    assert gdn_path(inputs(BF16), None, object(), setting) == "pytorch"  # context parallelism
    assert gdn_path(inputs(FP64), None, None, setting) == "pytorch"  # no kernel takes float64
    assert gdn_path(inputs(BF16, D=256), None, None, setting) == "pytorch"  # head dims over 128
    monkeypatch.setattr(gdn_triton, "AVAILABLE", False)
    monkeypatch.setattr(gdn_triton_rows, "AVAILABLE", False)
    assert gdn_path(inputs(BF16), None, None, setting) == "pytorch"  # no Triton (the CPU CI)


def test_environment_variable_and_set_gdn_kernel(monkeypatch):
    cases = [("0", "pytorch"), ("off", "pytorch"), ("1", "auto"), ("Memory", "memory"), ("", "auto")]
    for value, name in cases:
        if value == "":
            monkeypatch.delenv("SANAWM_GDN_KERNEL")
        else:
            monkeypatch.setenv("SANAWM_GDN_KERNEL", value)
        assert gdn.gdn_kernel_setting() == name
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "memory")
    gdn.set_gdn_kernel("pytorch")  # the config knob wins over the environment
    assert gdn.gdn_kernel_setting() == "pytorch"
    gdn.set_gdn_kernel(None)
    assert gdn.gdn_kernel_setting() == "memory"
    monkeypatch.setenv("SANAWM_GDN_KERNEL", "fast")
    with pytest.raises(ValueError, match="SANAWM_GDN_KERNEL='fast'.*auto, pytorch, rows, memory"):
        gdn.gdn_kernel_setting()
    with pytest.raises(ValueError, match="one of"):
        gdn.set_gdn_kernel("triton")


def test_gdn_scan_calls_the_chosen_scan(monkeypatch):
    calls = []
    monkeypatch.setattr(gdn_triton_rows, "gdn_scan_rows", lambda *a: calls.append("rows"))
    monkeypatch.setattr(gdn_triton, "gdn_scan_triton", lambda *a: calls.append("memory"))
    monkeypatch.setattr(gdn, "gdn_parallel", lambda *a, **k: calls.append("pytorch"))
    monkeypatch.setattr(gdn, "to_fp32", lambda x: x)
    gdn_scan(inputs(BF16))
    gdn_scan(inputs(BF16, grad=True))
    gdn.set_gdn_kernel("memory")
    gdn_scan(inputs(BF16, grad=True))
    assert calls == ["rows", "pytorch", "memory"]


def test_real_cpu_tensors_take_the_pytorch_scan():
    g = torch.Generator().manual_seed(0)
    x = GDNInputs(*(torch.rand(s, generator=g) for s in [(1, 1, 3, 4, 8)] * 3 + [(1, 1, 3, 4), (1, 1, 3)]))
    for setting in ("auto", "rows", "memory"):
        gdn.set_gdn_kernel(setting)
        assert gdn_path(x) == "pytorch"
        out = gdn_scan(x, (2, 1))
        ref = gdn.gdn_reference(x, (2, 1))
        torch.testing.assert_close(out.num, ref.num)


def test_training_config_knob():
    assert load_config(None).run.gdn_kernel is None  # the environment variable, else "auto"
    assert load_config(None, ["--run.gdn_kernel=memory"]).run.gdn_kernel == "memory"
    with pytest.raises(ValueError, match="gdn_kernel"):
        load_config(None, ["--run.gdn_kernel=fast"])
