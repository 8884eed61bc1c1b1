"""Weight-only int8 storage for transformer safetensors files (smaller pipeline folders).

Large weight tensors (2-D or more, at least `MIN_NUMEL` elements: linear and conv weights) are stored
as symmetric per-output-channel int8, `q = round(w / s)` with `s = max|w_row| / 127` (fp32, one per
output channel, dim 0), under the same key, with the scale beside it as `<key>.int8_scale`. Everything
else (norms, biases, scale_shift tables, A_log, small or 1-D tensors) is stored unchanged. The file's
safetensors header carries the marker {"sanawm_weights": "int8-per-channel"} and, under
"sanawm_int8", a JSON map {key: original dtype} of the quantised tensors.

Loading is transparent (`load_weights`, used by `from_diffusers` and hence
`WorldModelPipeline.from_pretrained`): the int8 tensors are dequantised into the requested dtype and the
scales dropped, so the state-dict keys are those of the unquantised file and strict loading works.
Each dequantised element is within s/2 of the stored weight. Such a file is not readable by diffusers'
own `SanaWMTransformer3DModel.from_pretrained` (it would see int8 tensors and the extra scale keys).

    save_diffusers(model, folder, int8=True)     # write a transformer folder in int8
    quantize_folder("my-model")                  # a pipeline folder's transformers and our VAE, in place
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

MARKER_KEY, MARKER = "sanawm_weights", "int8-per-channel"
TENSORS_KEY = "sanawm_int8"  # header entry: JSON {key: original dtype name} of the quantised tensors
SCALE_SUFFIX = ".int8_scale"
MIN_NUMEL = 4096
KEEP_NAMES = ("norm", "bias", "scale_shift_table", "A_log", "dt_bias", "recall_gate")
TRANSFORMER_CLASS = "SanaWMTransformer3DModel"
WEIGHTS = "diffusion_pytorch_model.safetensors"
# our small VAE's folder (sanawm.vae.small: SmallVideoVAE.save_pretrained), quantised the same way
VAE_CLASS, VAE_WEIGHTS = "SmallVideoVAE", "model.safetensors"
_QUANTISABLE = {TRANSFORMER_CLASS: WEIGHTS, VAE_CLASS: VAE_WEIGHTS}
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.bfloat16, torch.float16)}


class Int8WeightsError(ValueError):
    """An int8 weights file that cannot be read or written as asked (damaged, mismatched, already int8)."""


def should_quantize(name: str, tensor: torch.Tensor, min_numel: int = MIN_NUMEL) -> bool:
    """Whether `name` is stored as int8: a floating tensor of 2+ dims and `min_numel`+ elements that
    is not a norm, bias, scale_shift table, A_log or other excluded parameter."""
    return (
        tensor.is_floating_point()
        and tensor.ndim >= 2
        and tensor.numel() >= min_numel
        and not any(part in name for part in KEEP_NAMES)
    )


def quantize_tensor(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, fp32 per-output-channel scales) with |w - q * s| <= s / 2 for every element.

    The division and rounding run in float64, so the bound is exact for the stored fp32 scale. A row
    of zeros gets scale 1 (and q = 0)."""
    if not torch.isfinite(w).all():
        raise Int8WeightsError("cannot quantise a tensor with NaN or infinite values")
    rows = w.detach().cpu().double().reshape(w.shape[0], -1)
    amax = rows.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax)).float()
    q = torch.round(rows / scale.double()[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_tensor(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """q * s per output channel, computed in float32 (float64 if asked for) and cast to `dtype`."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    s = scale.to(work).reshape(-1, *([1] * (q.ndim - 1)))
    return (q.to(work) * s).to(dtype)


def quantize_state_dict(
    state: dict[str, torch.Tensor], min_numel: int = MIN_NUMEL
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, safetensors metadata) of the int8 form of `state`; keys of `state` are kept."""
    if any(k.endswith(SCALE_SUFFIX) for k in state):
        raise Int8WeightsError(
            f"the state dict already has {SCALE_SUFFIX} keys: it is int8 already; load it with "
            "load_weights (which dequantises) before quantising again"
        )
    out: dict[str, torch.Tensor] = {}
    dtypes: dict[str, str] = {}
    for name, w in state.items():
        w = w.detach().cpu()
        if should_quantize(name, w, min_numel):
            try:
                q, s = quantize_tensor(w)
            except Int8WeightsError as err:
                raise Int8WeightsError(f"{name}: {err}") from None
            out[name], out[name + SCALE_SUFFIX] = q, s
            dtypes[name] = str(w.dtype).removeprefix("torch.")
        else:
            out[name] = w.contiguous()
    return out, {MARKER_KEY: MARKER, TENSORS_KEY: json.dumps(dtypes, sort_keys=True)}


def is_int8(metadata: dict | None) -> bool:
    return bool(metadata) and MARKER_KEY in metadata


def file_is_int8(path: str | Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return is_int8(f.metadata())


def dequantize_state_dict(
    tensors: dict[str, torch.Tensor], metadata: dict | None, dtype: torch.dtype | None = None, source=""
) -> dict[str, torch.Tensor]:
    """The state dict of an int8 file's `tensors` and header `metadata` (unchanged when not int8), the
    quantised tensors in `dtype` (default: the dtype they had before quantisation). Raises
    `Int8WeightsError` naming the damage when tensors, scales and the header disagree."""
    where = f"{source}: " if source else ""
    fix = "re-export the folder (sanawm export / sanawm distill export, with --int8 if wanted)"
    if not is_int8(metadata):
        stray = sorted(k for k, v in tensors.items() if v.dtype == torch.int8 or k.endswith(SCALE_SUFFIX))
        if stray:
            raise Int8WeightsError(
                f"{where}has int8 tensors or scales ({stray[:3]}) but no {MARKER_KEY!r} header marker: "
                f"the file is damaged or was written by other software; {fix}"
            )
        return tensors
    if metadata[MARKER_KEY] != MARKER:
        raise Int8WeightsError(
            f"{where}weights format {metadata[MARKER_KEY]!r} is unknown to this sanawm "
            f"(it reads {MARKER!r}); update sanawm or {fix}"
        )
    try:
        listed = json.loads(metadata.get(TENSORS_KEY, ""))
    except json.JSONDecodeError:
        raise Int8WeightsError(
            f"{where}the header's {TENSORS_KEY!r} entry is missing or damaged; {fix}"
        ) from None
    if not isinstance(listed, dict):
        raise Int8WeightsError(f"{where}the header's {TENSORS_KEY!r} entry is damaged (not a map); {fix}")
    scales = {k[: -len(SCALE_SUFFIX)] for k in tensors if k.endswith(SCALE_SUFFIX)}
    if scales != set(listed):
        raise Int8WeightsError(
            f"{where}the header lists {len(listed)} int8 tensors but the file has {len(scales)} scales "
            f"(e.g. unlisted {sorted(scales - set(listed))[:3]}, without scale "
            f"{sorted(set(listed) - scales)[:3]}); the file is damaged: {fix}"
        )
    state: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name not in listed:
            if t.dtype == torch.int8:
                raise Int8WeightsError(f"{where}{name} is int8 but the header does not list it; {fix}")
            state[name] = t
            continue
        scale = tensors[name + SCALE_SUFFIX]
        if t.dtype != torch.int8 or t.ndim < 1 or tuple(scale.shape) != (t.shape[0],):
            raise Int8WeightsError(
                f"{where}{name} is {t.dtype} {tuple(t.shape)} with scale {tuple(scale.shape)}; int8 with "
                f"one scale per output channel expected: the file is damaged, {fix}"
            )
        if not torch.isfinite(scale).all() or (scale <= 0).any():
            raise Int8WeightsError(f"{where}{name}'s scales are not positive finite numbers; {fix}")
        if listed[name] not in _DTYPES and dtype is None:
            raise Int8WeightsError(f"{where}{name}'s original dtype {listed[name]!r} is unknown; {fix}")
        state[name] = dequantize_tensor(t, scale, dtype or _DTYPES[listed[name]])
    return state


def load_weights(path: str | Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """A safetensors file's state dict, int8 files dequantised into `dtype` (default: each tensor's
    dtype before quantisation); other files are returned as stored."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open has no iteration)
    except (SafetensorError, OSError) as err:
        raise Int8WeightsError(
            f"cannot read {path}: {err}; the file is damaged or incomplete: re-export or re-copy it"
        ) from None
    return dequantize_state_dict(tensors, metadata, dtype, source=str(path))


def save_int8(state: dict[str, torch.Tensor], path: str | Path, min_numel: int = MIN_NUMEL) -> Path:
    """Write `state` to the safetensors file `path` in int8 form (atomically: a temporary file, then a
    rename)."""
    from safetensors.torch import save_file

    tensors, metadata = quantize_state_dict(state, min_numel)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def quantize_file(path: str | Path, min_numel: int = MIN_NUMEL) -> dict:
    """Rewrite one weights file (a transformer's or our VAE's) in int8, in place.
    Returns {"before_mb", "after_mb"}."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        if is_int8(metadata):
            raise Int8WeightsError(
                f"{path} is int8 already ({MARKER_KEY}={metadata[MARKER_KEY]!r}); quantising twice would "
                "only add error: use it as it is, or quantise the bf16/fp32 export"
            )
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    before = path.stat().st_size
    save_int8(state, path, min_numel)
    return {"before_mb": round(before / 1e6, 2), "after_mb": round(path.stat().st_size / 1e6, 2)}


def _class_folders(folder: Path) -> list[tuple[Path, str]]:
    """(folder, _class_name) of every config.json in `folder` (itself included) naming a class."""
    found = []
    for cfg in sorted([folder / "config.json", *folder.rglob("*/config.json")]):
        if not cfg.is_file():
            continue
        try:
            cls = json.loads(cfg.read_text()).get("_class_name")
        except (json.JSONDecodeError, AttributeError):
            continue
        found.append((cfg.parent, cls))
    return found


def transformer_folders(folder: str | Path) -> list[Path]:
    """The SANA-WM transformer folders (config.json with _class_name SanaWMTransformer3DModel and a
    single weights file) in `folder`, itself included (transformer/, student/transformer/, ...)."""
    found = _class_folders(Path(folder))
    return [d for d, cls in found if cls == TRANSFORMER_CLASS and (d / WEIGHTS).is_file()]


def weights_files(folder: str | Path) -> list[Path]:
    """The weights files `quantize_folder` rewrites: those of every transformer folder and of every
    SmallVideoVAE folder (vae/: config.json + model.safetensors) in `folder`, itself included."""
    files = []
    for d, cls in _class_folders(Path(folder)):
        name = _QUANTISABLE.get(cls)
        if name is not None and (d / name).is_file():
            files.append(d / name)
    return files


def quantize_folder(folder: str | Path, min_numel: int = MIN_NUMEL, skip_int8: bool = False) -> dict:
    """Quantise, in place, every transformer folder in `folder` (a pipeline folder: transformer/,
    student/transformer/, refiner/transformer/ and any other SanaWMTransformer3DModel folder; or one
    transformer folder) and every SmallVideoVAE folder in it (its convolutions, as
    `SmallVideoVAE.save_pretrained(int8=True)` stores them; a diffusers LTX-2 VAE is left as it is).
    Returns {relative weights path: {"before_mb", "after_mb"}}. Refuses (before writing anything) a
    folder with no transformer, a sharded checkpoint, or an int8 file unless `skip_int8` (then such
    files are left as they are and not listed)."""
    folder = Path(folder)
    files = weights_files(folder)
    if not any(f.name == WEIGHTS for f in files):  # no transformer folder
        sharded = [p.parent for p in folder.rglob(WEIGHTS + ".index.json")]
        if sharded:
            raise Int8WeightsError(
                f"{sharded[0]} is a sharded checkpoint; int8 storage needs one {WEIGHTS}: save it unsharded"
            )
        raise Int8WeightsError(
            f"{folder} has no SANA-WM transformer folder (config.json with _class_name {TRANSFORMER_CLASS} "
            f"and {WEIGHTS}); pass a pipeline folder (transformer/, vae/, ...) or a transformer folder"
        )
    already = [f for f in files if file_is_int8(f)]
    if already and not skip_int8:
        raise Int8WeightsError(
            f"{already[0]} is int8 already; quantising twice would only add error: use the folder as it "
            "is, or quantise the bf16/fp32 export"
        )
    sizes = {}
    for f in files:
        if f not in already:
            rel = f.relative_to(folder).as_posix()
            sizes[rel] = quantize_file(f, min_numel)
    return sizes


def folder_megabytes(folder: str | Path) -> float:
    return round(sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6, 2)


def weights_error(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict:
    """Per-tensor relative error ||a - b|| / ||a|| (fp32) over the tensors that differ: max and mean,
    and the largest per-element error relative to the tensor's max |a|."""
    rel, elem = [], []
    for k, a in reference.items():
        a, b = a.float(), other[k].float()
        if torch.equal(a, b):
            continue
        rel.append(((a - b).norm() / a.norm().clamp_min(1e-30)).item())
        elem.append(((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item())
    return {
        "tensors_changed": len(rel),
        "max_rel_error": max(rel, default=0.0),
        "mean_rel_error": math.fsum(rel) / len(rel) if rel else 0.0,
        "max_elem_error_over_absmax": max(elem, default=0.0),
    }


__all__ = [
    "MARKER",
    "MARKER_KEY",
    "MIN_NUMEL",
    "SCALE_SUFFIX",
    "Int8WeightsError",
    "dequantize_state_dict",
    "file_is_int8",
    "folder_megabytes",
    "load_weights",
    "quantize_file",
    "quantize_folder",
    "quantize_state_dict",
    "quantize_tensor",
    "save_int8",
    "should_quantize",
    "transformer_folders",
]
