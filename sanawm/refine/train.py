"""Training the small refiner: truncated-σ flow matching on (stage-1, ground-truth) pairs (SPEC 5).

Per batch, one block j of the refiner's layout (sink, then blocks of `block_size`) is the target, drawn
uniformly or, with `refiner.target_bias` b > 0, with probability ∝ (j + 1)^b (the late clip weighs more;
`refiner.target_uniform` u mixes in a share u of uniform draws, so that the early blocks are trained too):

    x_σs = (1 − σ_s)·x_stage1 + σ_s·ε,   v* = (x_σs − x_target)/σ_s,   τ ~ U(0, σ_s],   x_τ = x_target + τ·v*

The network sees the clip chunk-causally (chunks = the refiner's blocks, its KV window): the frames before
block j clean at σ = 0 (standing in for the refined history), block j at x_τ with timestep 1000 τ. That
history is the ground truth, or, for a share `refiner.stage1_context` of the clips, the stage-1 rollout
itself (the sink frame stays the truth, as the conditioning image does): at inference the history is the
refiner's own output, which has drifted with stage 1, and a refiner that only saw true history learns to
continue whatever history it is given instead of correcting it. Later frames are causally invisible to
block j, so the clip is cut after it (a batch shares its j). The loss is the mean squared error against
v* on block j only; the sink frame is never a target. A run is a `_Distiller`-style loop (config.yaml,
metrics.jsonl, EMA, atomic checkpoints with exact resume, time box, bf16 on CUDA).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..distill.trainer import _Distiller, load_network
from ..training.checkpoint import load_model, resolve_checkpoint
from ..training.config import (
    DataSection,
    OptimSection,
    RunSection,
    build_typed,
    raw_config,
)
from ..training.data import build_dataset, derive_seed
from ..training.distributed import init_distributed
from ..training.trainer import EMA, _check_out_dir, _seed_everything
from .base import RELEASE_SIGMAS
from .pairs import PairDataset, build_pairs
from .small import REFINER_FILE, small_schedule

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class Stage1Section:
    """The pipeline whose stage-1 rollouts are refined (and whose network initialises the refiner)."""

    path: str | None = None
    teacher: bool = False  # roll out the multi-step network even when the folder has a student/


@dataclass
class PairsSection:
    dir: str | None = None  # default: run.out_dir/pairs
    samples: int = 256
    shard_size: int = 16
    batch_size: int = 8


@dataclass
class RefinerSection:
    sigmas: tuple[float, ...] = RELEASE_SIGMAS
    block_size: int = 3
    sink_size: int = 1
    kv_window: int = 2
    init_from: str | None = None  # default: stage1.path's transformer/ (the multi-step weights)
    # target block j drawn with probability ∝ (j + 1)^target_bias: 0 uniform over the clip; 1 in proportion
    # to its position, so that training weighs the late clip, where stage 1 has degraded most
    target_bias: float = 0.0
    # share of the draws that are uniform over the blocks whatever the bias: with target_bias = 1 over a
    # minute's 40 blocks the first block is drawn once in 820 steps, and what the refiner does there is
    # learned from late blocks, where stage 1 is wrong (it costs the first second; docs/model-card.md)
    target_uniform: float = 0.0
    # share of clips whose history (the frames between the sink and the target block) is the stage-1
    # rollout instead of the ground truth: 0 always the truth; at inference the history has drifted
    stage1_context: float = 0.0


@dataclass
class RefinerConfig:
    stage1: Stage1Section = field(default_factory=Stage1Section)
    pairs: PairsSection = field(default_factory=PairsSection)
    refiner: RefinerSection = field(default_factory=RefinerSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)


def load_refiner_config(source, overrides=()) -> RefinerConfig:
    """A preset (sanawm/refine/presets/NAME.yaml), a YAML path or a mapping, then --key=value overrides."""
    cfg = build_typed(RefinerConfig, raw_config(source, overrides, PRESETS_DIR, "refiner"))
    if cfg.stage1.path is None:
        raise ValueError(
            "stage1.path is not set: pass --stage1.path=PIPELINE_FOLDER (e.g. sanawm/assets/default-model)"
        )
    small_schedule(cfg.refiner.sigmas, cfg.refiner.block_size, cfg.refiner.sink_size, cfg.refiner.kv_window)
    if not cfg.refiner.target_bias >= 0:
        raise ValueError(f"refiner.target_bias must be >= 0 (0: uniform), got {cfg.refiner.target_bias}")
    if not 0 <= cfg.refiner.target_uniform <= 1:
        raise ValueError(
            f"refiner.target_uniform is a share of draws in [0, 1], got {cfg.refiner.target_uniform}"
        )
    if not 0 <= cfg.refiner.stage1_context <= 1:
        raise ValueError(
            f"refiner.stage1_context is a share of clips in [0, 1], got {cfg.refiner.stage1_context}"
        )
    return cfg


def refiner_chunks(latent_frames: int, block_size: int, sink_size: int) -> tuple[int, ...]:
    """The refiner's layout over T latent frames: the sink, then blocks of `block_size` (the last shorter)."""
    if latent_frames <= sink_size:
        raise ValueError(f"pairs need more than the {sink_size} sink frame(s); got {latent_frames} frames")
    rest = latent_frames - sink_size
    return (
        (sink_size,)
        + (block_size,) * (rest // block_size)
        + ((rest % block_size,) if rest % block_size else ())
    )


def target_block(blocks: int, bias: float, generator: torch.Generator, uniform: float = 0.0) -> torch.Tensor:
    """A target block index (1,) in [0, blocks), drawn with probability u/blocks + (1 − u)·(j + 1)^bias / Σ
    (u = `uniform`; bias 0: uniform)."""
    if bias == 0:
        return torch.randint(0, blocks, (1,), generator=generator)
    weights = torch.arange(1, blocks + 1, dtype=torch.float64) ** bias
    if uniform:
        weights = uniform / blocks + (1 - uniform) * weights / weights.sum()
    return torch.multinomial(weights, 1, generator=generator)


def truncated_flow_inputs(stage1, target, noise, sigma_s: float, tau):
    """x_τ and v* (B, C, F, H, W) for stage-1 / target latents and ε of the same shape; tau (B,)."""
    x_s = (1 - sigma_s) * stage1 + sigma_s * noise
    v = (x_s - target) / sigma_s
    return target + tau.view(-1, 1, 1, 1, 1).to(v) * v, v


def random_batch(
    cfg, batch_size: int, frames: int, grid: tuple[int, int], generator=None, device=None
) -> dict:
    """A batch laid out as `refiner_loss` takes it, random values (benchmarks and GPU checks: a step's cost
    and numerics do not depend on them): latents, stage1, noise (B, C, F, H, W), an 8-token text, cameras."""
    B, T, (H, W) = batch_size, frames, grid
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    batch = {
        "latents": torch.randn(B, cfg.in_channels, T, H, W, generator=g),
        "stage1": torch.randn(B, cfg.in_channels, T, H, W, generator=g),
        "noise": torch.randn(B, cfg.in_channels, T, H, W, generator=g),
        "text": torch.randn(B, 8, cfg.caption_channels, generator=g),
        "text_mask": torch.ones(B, 8, dtype=torch.bool),
        "camera": torch.randn(B, T, 20, generator=g) * 0.1,
        "plucker": torch.randn(B, cfg.plucker_channels, T, H, W, generator=g) * 0.1,
    }
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def refiner_loss(
    model,
    batch: dict,
    block: torch.Tensor,
    tau: torch.Tensor,
    *,
    sigma_s,
    chunks,
    kv_window,
    stage1_context: torch.Tensor | None = None,
):
    """Truncated-σ loss of a batch (stage1, latents = targets, noise, text, text_mask, camera, plucker) with
    target block index `block` (B,) (0 = the first block after the sink) and level `tau` (B,). The network
    runs on the frames up to the end of the latest target block only. `stage1_context` (B,) bool: clips whose
    history between the sink and the target block is the stage-1 rollout instead of the ground truth."""
    starts = torch.tensor([sum(chunks[: i + 1]) for i in range(len(chunks) - 1)])
    sizes = torch.tensor(chunks[1:])
    lo, hi = starts[block.cpu()], starts[block.cpu()] + sizes[block.cpu()]
    # The network is chunk-causal: frames after the latest target block cannot reach any target, so the
    # clip is cut there (half the work on average when a batch shares its block).
    T = int(hi.max())
    chunks = tuple(chunks[: int(block.max()) + 2])
    target, stage1, noise = (batch[k][:, :, :T] for k in ("latents", "stage1", "noise"))
    camera, plucker = batch.get("camera"), batch.get("plucker")
    camera = camera[:, :T] if camera is not None else None
    plucker = plucker[:, :, :T] if plucker is not None else None
    x_tau, v = truncated_flow_inputs(stage1, target, noise, sigma_s, tau)
    frame = torch.arange(T)
    sel = ((frame[None] >= lo[:, None]) & (frame[None] < hi[:, None])).to(target.device)  # (B, T)
    context = target
    if stage1_context is not None and bool(stage1_context.any()):
        past = (frame[None] >= chunks[0]) & (frame[None] < lo[:, None])  # (B, T): history after the sink
        past = past.to(target.device) & stage1_context.to(target.device)[:, None]
        context = torch.where(past[:, None, :, None, None], stage1, target)
    inputs = torch.where(sel[:, None, :, None, None], x_tau, context)
    timestep = sel.float() * tau.to(target.device)[:, None] * 1000.0
    pred = model(
        inputs,
        timestep,
        batch["text"],
        batch["text_mask"],
        camera,
        plucker,
        chunks=chunks,
        kv_window=kv_window,
    )
    err = (pred.float() - v.float()).square().mean(dim=(1, 3, 4))  # (B, T)
    w = sel.float()
    return (err * w).sum() / w.sum()


class RefinerTrainer(_Distiller):
    """Build (or finish) the pairs, then train the refiner (initialised from the stage-1 network)."""

    command, name = "refine", "train"

    def __init__(self, cfg: RefinerConfig, resume: bool = False) -> None:  # noqa: D107 (own setup)
        self.cfg = cfg
        env = init_distributed(cfg.run.device)
        if env.distributed:
            raise ValueError(
                "sanawm refine train runs in one process on one device; start it without torchrun"
            )
        self.device = env.device
        self.out_dir = Path(cfg.run.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.resumed_from = _check_out_dir(self.out_dir, self.ckpt_root, resume)
        _seed_everything(cfg.run.seed)
        self.bf16 = cfg.run.precision == "bf16" and self.device.type == "cuda"
        init = cfg.refiner.init_from or cfg.stage1.path
        self.student = self._trainable(load_network(init, "ema"))
        self.model_config = self.student.cfg
        self.optimizer, self.scheduler = self._optimizer(self.student, cfg.optim, cfg.run.steps)
        self.ema = EMA(self.student, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
        self.chunks = refiner_chunks(cfg.data.latent_frames, cfg.refiner.block_size, cfg.refiner.sink_size)
        self.step, self.position = 0, 0

    def _say(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"sanawm refine: {text}")

    def pairs_dir(self) -> Path:
        return Path(self.cfg.pairs.dir) if self.cfg.pairs.dir else self.out_dir / "pairs"

    def build(self) -> Path:
        """The pair folder, built first when incomplete (resumable)."""
        from ..pipelines import WorldModelPipeline

        cfg = self.cfg
        folder = self.pairs_dir()
        if (folder / "index.json").is_file():
            return folder
        pipe = WorldModelPipeline.from_pretrained(
            cfg.stage1.path, device=self.device, student=False if cfg.stage1.teacher else None
        )
        source = build_dataset(cfg.data, pipe.transformer.cfg, cfg.run.seed)
        settings = {
            "pipeline": str(Path(cfg.stage1.path).resolve()),
            "data": [cfg.data.source, cfg.data.path, list(cfg.data.size)],
        }
        self._say(f"stage-1 rollouts into {folder} ({'student' if pipe.is_student else 'multi-step'})")
        from tqdm import tqdm

        bar = tqdm(total=cfg.pairs.samples, desc="refiner pairs", unit="clip", disable=not cfg.run.progress)

        def report(done, total):
            bar.n = done
            bar.refresh()

        folder = build_pairs(
            folder,
            pipe,
            source,
            samples=cfg.pairs.samples,
            latent_frames=cfg.data.latent_frames,
            seed=cfg.run.seed,
            settings=settings,
            shard_size=cfg.pairs.shard_size,
            batch_size=cfg.pairs.batch_size,
            progress=report,
        )
        bar.close()
        return folder

    def dataset(self):
        return PairDataset(self.build())

    def train_step(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        g = torch.Generator().manual_seed(derive_seed(cfg.run.seed, self.step, 40))
        B = batch["latents"].shape[0]
        # one target block for the whole batch, so that refiner_loss can cut every clip after it
        blocks = len(self.chunks) - 1
        block = target_block(blocks, cfg.refiner.target_bias, g, cfg.refiner.target_uniform).expand(B)
        sigma_s = float(cfg.refiner.sigmas[0])
        tau = sigma_s * (1 - torch.rand(B, generator=g))  # (0, σ_s]
        stage1_context = torch.rand(B, generator=g) < cfg.refiner.stage1_context
        keys = ["latents", "stage1", "noise", "text", "text_mask"]
        keys += ["camera", "plucker"] if cfg.data.camera else []
        dev = {k: batch[k].to(self.device) for k in keys}
        with self._autocast():
            loss = refiner_loss(
                self.student,
                dev,
                block,
                tau,
                sigma_s=sigma_s,
                chunks=self.chunks,
                kv_window=cfg.refiner.kv_window,
                stage1_context=stage1_context,
            )
        loss.backward()
        norm = self._update(self.student, self.optimizer, self.scheduler, cfg.optim.grad_clip)
        if self.ema is not None:
            self.ema.update(self.student)
        return {"loss": loss.item(), "grad_norm": norm.item()}


def export_refiner(
    run, pipeline, out, *, weights: str = "ema", dtype: str = "bf16", overwrite=False, int8: bool = False
) -> Path:
    """Write `out`: the pipeline folder plus refiner/ (transformer/ + refiner.json) from a refiner run.
    `int8`: the refiner's large weights in int8 (`sanawm.model.int8`, as the shipped default model stores
    its transformers), and the stage-1 copy and a small VAE too unless they are int8 already."""
    from ..model.diffusers_compat import save_diffusers
    from ..model.int8 import quantize_folder
    from ..pipelines.export import DTYPES, publish_folder

    pipeline, out = Path(pipeline), Path(out)
    if not (pipeline / "transformer" / "config.json").is_file() or not (pipeline / "vae").is_dir():
        raise FileNotFoundError(f"{pipeline} is not a pipeline folder (transformer/, vae/, ...)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another folder or pass --overwrite")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    ckpt = resolve_checkpoint(run)
    cfg = load_refiner_config(ckpt / "config.yaml")
    net = load_model(ckpt, weights)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(pipeline, tmp, ignore=shutil.ignore_patterns("refiner"))
    save_diffusers(net.to(DTYPES[dtype]), tmp / "refiner" / "transformer", int8=int8)
    if int8:
        quantize_folder(tmp, skip_int8=True)
    spec = {
        "sigmas": [float(s) for s in cfg.refiner.sigmas],
        "block_size": cfg.refiner.block_size,
        "sink_size": cfg.refiner.sink_size,
        "kv_window": cfg.refiner.kv_window,
        "_source": {"run": str(ckpt), "weights": weights},
    }
    (tmp / "refiner" / REFINER_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return publish_folder(tmp, out)


__all__ = [
    "RefinerConfig",
    "RefinerTrainer",
    "export_refiner",
    "load_refiner_config",
    "refiner_chunks",
    "refiner_loss",
    "target_block",
    "truncated_flow_inputs",
]
