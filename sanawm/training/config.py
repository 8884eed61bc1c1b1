"""Training configuration: typed dataclasses, YAML files, command-line overrides, named presets.

A config is a YAML file (or a preset name: `sanawm/training/presets/NAME.yaml`) whose sections mirror
`TrainConfig`. A file may start from another with `base: NAME_OR_PATH` (mappings merge key by key).
Command-line overrides use dotted keys, `--optim.lr=1e-5 --run.steps=100`, and are checked against the
dataclass annotations, as YAML values are: an unknown key or a value of the wrong type is an error
that names the key, what it expects and, for a misspelling, the nearest known key.

    cfg = load_config("tiny-smoke", ["--run.steps=3"])
    dump_config(cfg)   # the resolved YAML the trainer writes next to its checkpoints
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from ..model.config import PRESETS as MODEL_PRESETS
from ..model.config import ModelConfig
from .timesteps import ConditionDropout, TimestepSampler

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class ModelSection:
    """The network to train.

    preset: architecture, a `sanawm.model` preset (None: take it from `init_from`).
    overrides: ModelConfig fields changed from the preset, e.g. {softmax_every_n: 0} for GDN only.
    init_from: initial weights: a diffusers `SanaWMTransformer3DModel` folder (config.json +
        diffusion_pytorch_model.safetensors), a sanawm training checkpoint folder, or a run folder
        (its latest checkpoint). Weights load by state-dict key, so a GDN-only checkpoint initialises a
        model with softmax blocks (they share keys). None: fresh initialisation.
    init_weights: 'model' or 'ema' weights of a sanawm checkpoint.
    """

    preset: str | None = "sana-wm-tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    init_weights: Literal["model", "ema"] = "model"

    def __post_init__(self) -> None:
        if self.preset is None and self.init_from is None:
            raise ValueError("model.preset is null, so model.init_from must name weights to take it from")
        if self.preset is not None and self.preset not in MODEL_PRESETS:
            raise ValueError(f"unknown model.preset {self.preset!r}; choose one of {sorted(MODEL_PRESETS)}")
        hints = get_type_hints(ModelConfig)
        known = [f.name for f in dataclasses.fields(ModelConfig)]
        self.overrides = {
            k: _coerce(v, hints[_known_key(k, known, "model.overrides")], f"model.overrides.{k}")
            for k, v in dict(self.overrides).items()
        }


@dataclass
class DataSection:
    """Training samples.

    source: 'synthetic' (deterministic random tensors for smoke tests and CI, see
        `sanawm.training.data.SyntheticClips`), 'clips' (a `sanawm.data.ClipDataset` root `path`, encoded
        on the fly with the video VAE folder `vae` and the Gemma-2 folder `text_encoder`, None: no text)
        or 'latents' (a latent-cache folder `path` written by `sanawm cache-latents`).
    batch_size: the global batch, over all ranks together.
    latent_frames: T; a clip of 8 (T − 1) + 1 raw frames (11: 5 s, 121: 60 s at 16 fps).
    size: (H, W) in pixels, multiples of 32; the latent grid is (H / 32, W / 32).
    text_tokens: text length L (synthetic source; max_length of the Gemma-2 encoder).
    vae_tile_frames: encode clips in temporal tiles of this many latent frames (None: whole clips).
    camera: feed camera and Plücker inputs (stages 1–2 of SPEC 6 train without camera control).
    workers: DataLoader worker processes.
    """

    source: Literal["synthetic", "clips", "latents"] = "synthetic"
    path: str | None = None
    vae: str | None = None
    text_encoder: str | None = None
    batch_size: int = 2
    latent_frames: int = 7
    size: tuple[int, int] = (128, 128)
    text_tokens: int = 8
    vae_tile_frames: int | None = None
    camera: bool = True
    workers: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.latent_frames < 1 or self.text_tokens < 0 or self.workers < 0:
            raise ValueError(
                "data.batch_size and data.latent_frames must be ≥ 1, data.text_tokens and data.workers ≥ 0"
            )
        if any(s < 32 or s % 32 for s in self.size):
            raise ValueError(f"data.size {list(self.size)} must be (H, W) pixels, positive multiples of 32")

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.size[0] // 32, self.size[1] // 32


@dataclass
class FlowSection:
    """The flow-matching objective.

    mode: 'bidirectional' (all frames see each other) or 'chunk_causal' (chunks of `chunk` latent
        frames, the first `first_chunk`; softmax blocks see the first chunk, `kv_window` previous
        chunks (None: all) and their own).
    timesteps: σ sampling (`sanawm.training.timesteps.TimestepSampler`).
    dropout: text / camera dropout for guidance (`sanawm.training.timesteps.ConditionDropout`).
    """

    mode: Literal["bidirectional", "chunk_causal"] = "bidirectional"
    first_chunk: int = 4
    chunk: int = 3
    kv_window: int | None = None
    timesteps: TimestepSampler = field(default_factory=TimestepSampler)
    dropout: ConditionDropout = field(default_factory=ConditionDropout)

    def __post_init__(self) -> None:
        if self.first_chunk < 1 or self.chunk < 1 or (self.kv_window is not None and self.kv_window < 0):
            raise ValueError("flow.first_chunk and flow.chunk must be ≥ 1 and flow.kv_window ≥ 0 or null")

    def chunks(self, latent_frames: int) -> tuple[int, ...] | None:
        """Frames per chunk, or None when bidirectional."""
        if self.mode == "bidirectional":
            return None
        from ..sampling.flow import chunk_layout

        return chunk_layout(latent_frames, self.chunk, self.first_chunk)


@dataclass
class OptimSection:
    """AdamW with linear warm-up then a constant or cosine (down to min_lr_ratio · lr) schedule.

    Weight decay applies to matrices and conv kernels only (not to biases, norms, gates or the
    modulation tables). grad_clip: max global gradient norm (None: no clipping, the norm is still
    logged). ema_decay: keep an fp32 exponential moving average of the weights (None: none).
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 0.5
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.eps <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("optim.lr and optim.eps must be > 0, optim.weight_decay and warmup_steps ≥ 0")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be in [0, 1), got {list(self.betas)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"optim.ema_decay must be in [0, 1) or null, got {self.ema_decay}")


@dataclass
class RunSection:
    """The run.

    out_dir: config.yaml, metrics.jsonl, tensorboard/ and checkpoints/ go here.
    precision: 'bf16' autocasts the forward on CUDA (weights, optimizer and EMA stay fp32); on the
        CPU the run is fp32 whatever this says.
    device: 'auto' (CUDA if present), 'cpu' or 'cuda'; under torchrun each rank takes cuda:LOCAL_RANK.
    keep_checkpoints: how many of the latest checkpoints to keep (None: all).
    context_parallel: ranks per context-parallel group c (under torchrun with W ranks: W / c data-parallel
        groups of c consecutive ranks; each group reads the same samples and splits their latent frames,
        so data.latent_frames must be a multiple of c). 1: plain data parallelism.
    time_limit_minutes: stop early, with a checkpoint, once the run (this process) has trained this long;
        for time-boxed machines. The step reached is logged; `--run.steps=THAT` reproduces the run.
    gdn_kernel: the frame-wise GDN scan's path (`sanawm.model.ops.gdn.gdn_scan`): 'memory' trains on the
        Triton kernels, half the activation memory of a 60 s GDN layer at about half its speed; 'auto'
        and 'pytorch' train on the PyTorch scan (the fastest measured). null leaves the choice to the
        environment variable SANAWM_GDN_KERNEL, else 'auto'. Checkpoints do not depend on it.
    compile: put every transformer block under `torch.compile` (`SanaWMTransformer.compile_blocks`) for
        training: the first steps compile (each block kind, forward and backward); small networks, whose
        steps are bound by kernel launches, gain the most. Weights, state-dict keys and checkpoints are
        the same as without it.
    """

    steps: int = 100
    out_dir: str = "runs/train"
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    keep_checkpoints: int | None = 3
    precision: Literal["fp32", "bf16"] = "bf16"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    activation_checkpointing: bool = False
    progress: bool = True
    tensorboard: bool = True
    context_parallel: int = 1
    time_limit_minutes: float | None = None
    gdn_kernel: Literal["auto", "pytorch", "rows", "memory"] | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.time_limit_minutes is not None and self.time_limit_minutes <= 0:
            raise ValueError(f"run.time_limit_minutes must be > 0 or null, got {self.time_limit_minutes}")
        if self.context_parallel < 1:
            raise ValueError(f"run.context_parallel must be ≥ 1, got {self.context_parallel}")
        if self.steps < 0 or self.log_every < 1 or self.ckpt_every < 1 or self.seed < 0:
            raise ValueError("run.steps and run.seed must be ≥ 0, run.log_every and run.ckpt_every ≥ 1")
        if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
            raise ValueError(f"run.keep_checkpoints must be ≥ 1 or null, got {self.keep_checkpoints}")


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    flow: FlowSection = field(default_factory=FlowSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def model_config(self) -> ModelConfig:
        """The architecture: the preset with the overrides (a preset-less config reads `init_from`)."""
        if self.model.preset is not None:
            return MODEL_PRESETS[self.model.preset].replace(**self.model.overrides)
        from .checkpoint import read_model_config

        return read_model_config(self.model.init_from).replace(**self.model.overrides)


# ---- loading -------------------------------------------------------------------------------------


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(source: str | Path | Mapping | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A preset name, a YAML path or a mapping, then `--key=value` overrides, typed and checked."""
    raw: dict = {} if source is None else dict(source) if isinstance(source, Mapping) else read_yaml(source)
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
    return config_from_dict(raw)


def raw_config(source: str | Path | Mapping, overrides: Sequence[str], presets_dir: Path, kind: str) -> dict:
    """The untyped mapping of another config family (distillation, refiner): a preset of `presets_dir`
    (NAME.yaml), a YAML file or a mapping, with `--key=value` overrides set; type it with `build_typed`.
    `kind` names the family in the error for a source that is neither."""
    if isinstance(source, Mapping):
        raw = dict(source)
    elif (presets_dir / f"{source}.yaml").is_file():
        raw = read_yaml(presets_dir / f"{source}.yaml")
    elif Path(source).is_file():
        raw = read_yaml(source)
    else:
        presets = sorted(p.stem for p in presets_dir.glob("*.yaml"))
        raise ValueError(f"{str(source)!r} is neither a YAML file nor a {kind} preset; presets: {presets}")
    for item in overrides:
        _set_dotted(raw, *parse_override(item))
    return raw


def read_yaml(source: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The mapping of a preset or a YAML file, with its `base:` chain merged in."""
    path = _resolve(source)
    if path in _seen:
        raise ValueError(f"config base chain loops: {' -> '.join(map(str, (*_seen, path)))}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of config sections, not {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    local = path.parent / f"{base}.yaml" if not str(base).endswith((".yaml", ".yml")) else path.parent / base
    return _merge(read_yaml(local if local.is_file() else base, (*_seen, path)), data)


def parse_override(item: str) -> tuple[str, str]:
    if not item.startswith("--") or "=" not in item:
        raise ValueError(f"override {item!r} must look like --section.key=value, e.g. --optim.lr=1e-5")
    key, value = item[2:].split("=", 1)
    if not key:
        raise ValueError(f"override {item!r} has no key")
    return key, value


def config_from_dict(raw: Mapping) -> TrainConfig:
    return _build(TrainConfig, raw, "")


def build_typed(cls, raw: Mapping):
    """Any config dataclass (e.g. `sanawm.distill.DistillConfig`) from a mapping, typed and checked
    as `TrainConfig` is."""
    return _build(cls, raw, "")


def config_to_dict(cfg: Any) -> dict:
    """Plain YAML-able data (tuples become lists)."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


# ---- typing --------------------------------------------------------------------------------------


def _resolve(source: str | Path) -> Path:
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path.resolve()
    preset = PRESETS_DIR / f"{source}.yaml"
    if preset.is_file():
        return preset
    raise ValueError(
        f"{str(source)!r} is neither a YAML file nor a training preset; presets: {list_presets()}"
    )


def _merge(base: dict, top: Mapping) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"--{'.'.join(parts[: i + 1])} is a value, not a section; cannot set --{key}")
        node = child
    node[parts[-1]] = value


def _known_key(key: str, known: Sequence[str], where: str) -> str:
    if key in known:
        return key
    dotted = (lambda k: f"{where}.{k}") if where else (lambda k: k)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {dotted(close[0])}?" if close else "."
    raise ValueError(
        f"unknown config key {dotted(key)}{hint} Known keys of {where or 'the config'}: {sorted(known)}"
    )


def _build(cls, raw: Any, where: str):
    name = where or "the config"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{name} must be a mapping of keys, got {raw!r}")
    hints = get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        _known_key(str(key), known, where)
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` (native, or a string from the command line) as the annotated type, or a ValueError."""
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if hint is Any:
        return _scalar(value) if isinstance(value, str) else value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, (str, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip()
            value = yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, e.g. [1, 2] or 1,2; got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{key} must have {len(args)} items, got {list(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"config field {key} has an unsupported annotation {hint!r}")


_BOOLS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}


def _scalar(text: str) -> Any:
    """A command-line value for a field typed Any: YAML's reading, with 1e-5 read as a number."""
    try:
        return float(text) if "e" in text.lower() and not text.isalpha() else yaml.safe_load(text)
    except ValueError:
        return yaml.safe_load(text)


__all__ = [
    "DataSection",
    "FlowSection",
    "ModelSection",
    "OptimSection",
    "PRESETS_DIR",
    "RunSection",
    "TrainConfig",
    "build_typed",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "list_presets",
    "load_config",
    "raw_config",
    "read_yaml",
]
