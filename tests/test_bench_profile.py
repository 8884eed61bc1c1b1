"""`benchmarks/bench_720p.py --profile-stream`'s table of the network's parts, on the CPU with the tiny
preset: every part of both block kinds is timed, a block's parts fit inside it, and the hooks are gone
afterwards."""

import sys
import types
from pathlib import Path

import pytest
import torch

from sanawm.model.config import get_preset
from sanawm.model.transformer import SanaWMTransformer

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their siblings by name
    import bench_720p

    yield bench_720p
    for name in ("bench_720p", "bench_model", "bench_streaming"):
        sys.modules.pop(name, None)


def test_profile_stream_times_each_part_of_the_network(bench, tmp_path):
    torch.manual_seed(0)
    model = SanaWMTransformer(get_preset("sana-wm-tiny")).eval()
    path = tmp_path / "profile.txt"
    args = types.SimpleNamespace(height=64, width=64)
    row = bench.profile_stream(model, args, str(path), None, seconds=1.5)
    parts = row["parts_ms_a_call"]
    kinds = set(model.cfg.block_kinds)
    assert kinds == {"gdn", "softmax"}
    for kind in kinds:
        for part in ("(whole)", ": attn", ": cross_attn", ": mlp", ": norm1", ": norm2", ": plucker_proj"):
            name = f"{kind} block{' ' if part.startswith('(') else ''}{part}"
            assert parts[name] > 0, name
        inner = sum(v for k, v in parts.items() if k.startswith(f"{kind} block: "))
        assert inner <= parts[f"{kind} block (whole)"]  # a block's parts run inside it
    assert {"x_embedder", "t_embedder", "final_layer"} <= parts.keys()
    text = path.read_text()
    assert "| gdn block: attn |" in text and "share of the top-level" in text
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
