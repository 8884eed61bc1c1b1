"""Int8 weight storage (`sanawm.model.int8`): the exact rounding bound, which tensors stay untouched,
the header marker, strict transparent loading, and clear errors on damaged or mismatched files."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sanawm.model import SanaWMTransformer, from_diffusers, get_preset, save_diffusers
from sanawm.model.int8 import (
    MARKER,
    MARKER_KEY,
    SCALE_SUFFIX,
    TENSORS_KEY,
    WEIGHTS,
    Int8WeightsError,
    dequantize_state_dict,
    load_weights,
    quantize_file,
    quantize_folder,
    quantize_state_dict,
    quantize_tensor,
    should_quantize,
)
from tests.model.helpers import randomize


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).to(torch.bfloat16)


@pytest.mark.parametrize("shape", [(64, 128), (32, 16, 3, 3), (96, 8, 1, 1, 1), (7, 4096)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_error_is_at_most_half_a_step_per_element(shape, dtype):
    g = torch.Generator().manual_seed(1)
    w = (torch.randn(shape, generator=g) * torch.rand(shape[0], *[1] * (len(shape) - 1), generator=g) * 3).to(
        dtype
    )
    w[0] = 0  # a zero row: scale 1, exact
    w.view(shape[0], -1)[1, 5] = 1e4  # one outlier in one row
    q, s = quantize_tensor(w)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (shape[0],)
    assert q.abs().max() <= 127 and (q.view(shape[0], -1).abs().amax(1)[1:] == 127).all()  # full range used
    deq = q.double() * s.double().reshape(-1, *[1] * (len(shape) - 1))
    err = (deq - w.double()).abs()
    bound = (s.double() / 2).reshape(-1, *[1] * (len(shape) - 1))
    assert (err <= bound).all(), (err / bound).max()
    assert err[0].max() == 0
    assert (err > bound / 4).any()  # the bound is not vacuous: errors do come close to it


def test_quantize_state_dict_keeps_small_tensors_bit_identical_and_marks_the_header(tiny):
    state = tiny.state_dict()
    tensors, meta = quantize_state_dict(state)
    listed = json.loads(meta[TENSORS_KEY])
    assert meta[MARKER_KEY] == MARKER and listed
    assert set(tensors) == set(state) | {k + SCALE_SUFFIX for k in listed}
    for name, v in state.items():
        if name in listed:
            assert (
                should_quantize(name, v) and tensors[name].dtype == torch.int8 and listed[name] == "bfloat16"
            )
            assert v.ndim >= 2 and v.numel() >= 4096
        else:
            assert tensors[name].dtype == v.dtype and torch.equal(tensors[name], v)  # bit-identical
    kept = {k.rsplit(".", 1)[-1] for k in state if k not in listed}
    assert {"scale_shift_table", "A_log", "bias"} <= kept
    assert not any("norm" in k or k.endswith(("bias", "A_log", "scale_shift_table")) for k in listed)


def test_int8_folder_loads_strictly_with_the_same_keys_in_the_asked_dtype(tiny, tmp_path):
    save_diffusers(tiny, tmp_path / "bf16")
    save_diffusers(tiny, tmp_path / "int8", int8=True)
    size = {d: (tmp_path / d / WEIGHTS).stat().st_size for d in ("bf16", "int8")}
    assert size["int8"] < 0.7 * size["bf16"]
    with safe_open(str(tmp_path / "int8" / WEIGHTS), framework="pt") as f:
        assert f.metadata()[MARKER_KEY] == MARKER
    ref = from_diffusers(tmp_path / "bf16")
    for dtype in (None, torch.float32):
        model = from_diffusers(tmp_path / "int8", dtype=dtype)
        assert next(model.parameters()).dtype == (dtype or torch.bfloat16)
        got, want = model.state_dict(), ref.state_dict()
        assert list(got) == list(want)
        for k in want:
            a, b = want[k].float(), got[k].float()
            assert (a - b).abs().max() <= a.abs().max() / 127 + 1e-6, k
    # the fp32 load is the exact dequantisation q * s (no bf16 rounding in between)
    raw = load_file(tmp_path / "int8" / WEIGHTS)
    name = next(k[: -len(SCALE_SUFFIX)] for k in raw if k.endswith(SCALE_SUFFIX))
    exact = raw[name].float() * raw[name + SCALE_SUFFIX].reshape(-1, *[1] * (raw[name].ndim - 1))
    assert torch.equal(from_diffusers(tmp_path / "int8", dtype=torch.float32).state_dict()[name], exact)


def test_quantize_folder_refuses_int8_files_and_non_transformer_folders(tiny, tmp_path):
    save_diffusers(tiny, tmp_path / "m" / "transformer")
    (tmp_path / "m" / "vae").mkdir()
    (tmp_path / "m" / "vae" / "config.json").write_text('{"_class_name": "SmallVideoVAE"}')
    sizes = quantize_folder(tmp_path / "m")
    assert list(sizes) == ["transformer/" + WEIGHTS]
    assert sizes["transformer/" + WEIGHTS]["after_mb"] < sizes["transformer/" + WEIGHTS]["before_mb"]
    with pytest.raises(Int8WeightsError, match="int8 already.*bf16/fp32 export"):
        quantize_folder(tmp_path / "m")
    with pytest.raises(Int8WeightsError, match="int8 already"):
        quantize_file(tmp_path / "m" / "transformer" / WEIGHTS)
    assert quantize_folder(tmp_path / "m", skip_int8=True) == {}
    with pytest.raises(Int8WeightsError, match="no SANA-WM transformer folder.*pass a pipeline folder"):
        quantize_folder(tmp_path / "m" / "vae")


def test_quantize_folder_takes_our_vae_and_leaves_other_vaes(tiny, tmp_path):
    """A pipeline folder with a bf16 SmallVideoVAE comes out with that VAE's convolutions in int8 too (as
    `save_pretrained(int8=True)` stores them), its student's transformer as well; a diffusers VAE folder
    (another _class_name) is not touched."""
    from sanawm.vae.small import SMALL_VAE_PRESETS, SmallVideoVAE

    torch.manual_seed(1)
    vae = SmallVideoVAE(SMALL_VAE_PRESETS["tiny"]).to(torch.bfloat16)
    m = tmp_path / "m"
    save_diffusers(tiny, m / "transformer")
    save_diffusers(tiny, m / "student" / "transformer")
    vae.save_pretrained(m / "vae")
    (m / "ltx").mkdir()
    (m / "ltx" / "config.json").write_text('{"_class_name": "AutoencoderKLLTX2Video"}')
    save_file({"w": torch.randn(64, 128)}, m / "ltx" / "diffusion_pytorch_model.safetensors")
    before = (m / "ltx" / "diffusion_pytorch_model.safetensors").read_bytes()

    sizes = quantize_folder(m)
    vae_file = "vae/model.safetensors"
    assert sorted(sizes) == ["student/transformer/" + WEIGHTS, "transformer/" + WEIGHTS, vae_file]
    assert sizes[vae_file]["after_mb"] < sizes[vae_file]["before_mb"]
    assert (m / "ltx" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    # the same tensors as saving the VAE in int8 directly
    vae.save_pretrained(tmp_path / "direct", int8=True)
    direct, quant = load_file(tmp_path / "direct" / "model.safetensors"), load_file(m / vae_file)
    assert direct.keys() == quant.keys() and any(k.endswith(SCALE_SUFFIX) for k in quant)
    assert all(torch.equal(direct[k], quant[k]) for k in direct)
    back = SmallVideoVAE.from_pretrained(m / "vae")
    ref = vae.float().state_dict()
    for k, v in back.state_dict().items():
        assert (v - ref[k]).abs().max() <= ref[k].abs().max() / 127 + 1e-6, k
    # a second pass: refused, or (skip_int8) a no-op over every file, the VAE's included
    with pytest.raises(Int8WeightsError, match="int8 already"):
        quantize_folder(m)
    assert quantize_folder(m, skip_int8=True) == {}


def _damaged(tmp_path, tiny, edit):
    save_diffusers(tiny, tmp_path, int8=True)
    path = tmp_path / WEIGHTS
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    edit(tensors, meta)
    save_file(tensors, str(path), metadata=meta)
    return tmp_path


def _first_int8(tensors):
    return next(k[: -len(SCALE_SUFFIX)] for k in tensors if k.endswith(SCALE_SUFFIX))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t, m: t.pop(_first_int8(t) + SCALE_SUFFIX), "damaged"),
        (lambda t, m: m.pop(MARKER_KEY), "no 'sanawm_weights' header marker"),
        (lambda t, m: m.update({MARKER_KEY: "int4-blockwise"}), "unknown to this sanawm.*update sanawm"),
        (lambda t, m: m.update({TENSORS_KEY: "{not json"}), "damaged"),
        (lambda t, m: t.update({_first_int8(t) + SCALE_SUFFIX: torch.ones(3)}), "one scale per output"),
        (
            lambda t, m: t.update({_first_int8(t) + SCALE_SUFFIX: -t[_first_int8(t) + SCALE_SUFFIX]}),
            "positive",
        ),
    ],
)
def test_a_damaged_or_mismatched_int8_file_is_refused_with_the_fix(tiny, tmp_path, edit, message):
    folder = _damaged(tmp_path, tiny, edit)
    with pytest.raises(Int8WeightsError, match=message) as err:
        from_diffusers(folder)
    assert "re-export" in str(err.value) or "update sanawm" in str(err.value)


def test_a_truncated_file_is_refused_with_the_fix(tiny, tmp_path):
    save_diffusers(tiny, tmp_path, int8=True)
    data = (tmp_path / WEIGHTS).read_bytes()
    (tmp_path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(Int8WeightsError, match="damaged or incomplete: re-export"):
        load_weights(tmp_path / WEIGHTS)


def test_plain_files_pass_through_unchanged(tiny):
    state = tiny.state_dict()
    for meta in (None, {"step": "3"}):
        got = dequantize_state_dict(dict(state), meta)
        assert list(got) == list(state) and all(torch.equal(a, state[k]) for k, a in got.items())
    with pytest.raises(Int8WeightsError, match="NaN"):
        quantize_state_dict({"w": torch.full((64, 64), float("nan"))})
