"""The training loop: model, AdamW, LR schedule, EMA, checkpoints, metrics.

    trainer = Trainer(load_config("tiny-smoke"), resume=False)
    summary = trainer.train()

Randomness is a function of (run.seed, step, sample position): σ and guidance dropout come from a
generator seeded by (seed, step) and drawn for the whole global batch on every rank, noise and data
from (seed, position) (`sanawm.training.data`). So the global batch is the same on any number of ranks,
and a resumed run repeats an uninterrupted one exactly (the checkpoint also restores every RNG state).
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.checkpoint import checkpoint

from ..model.ops.context_parallel import ContextParallel
from ..model.ops.gdn import set_gdn_kernel
from ..model.transformer import SanaWMTransformer
from .checkpoint import (
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    restore_rng,
    save_checkpoint,
)
from .config import OptimSection, TrainConfig, dump_config
from .data import ClipEncoder, build_dataset, build_loader, derive_seed
from .distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    full_model_state,
    full_optimizer_state,
    full_tensor,
    gather_objects,
    init_distributed,
    load_model_state,
    load_optimizer_state,
    shard_like,
    shard_model,
)
from .flow_matching import flow_matching_loss


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        self.cfg = cfg
        self.env = env = init_distributed(cfg.run.device, cfg.run.context_parallel)
        if cfg.run.gdn_kernel is not None:
            set_gdn_kernel(cfg.run.gdn_kernel)
        self.out_dir = Path(cfg.run.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        resume_from = _check_out_dir(self.out_dir, self.ckpt_root, resume)
        _seed_everything(cfg.run.seed)  # the same initial weights on every rank

        self.model_config = cfg.model_config()
        self.dataset = build_dataset(cfg.data, self.model_config, cfg.run.seed)
        model = build_model(cfg)
        if cfg.run.activation_checkpointing:
            checkpoint_blocks(model)
        self.model = shard_model(model.to(env.device), env)
        if cfg.run.compile:
            self.model.compile_blocks()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = LambdaLR(
            self.optimizer, functools.partial(lr_factor, optim=cfg.optim, steps=cfg.run.steps)
        )
        self.ema = EMA(self.model, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
        self.chunks = cfg.flow.chunks(cfg.data.latent_frames)
        self.bf16 = cfg.run.precision == "bf16" and env.device.type == "cuda"
        self.encoder = None  # 'clips': video and captions are encoded here, on the training device
        if cfg.data.source == "clips":
            dtype = torch.bfloat16 if self.bf16 else torch.float32
            self.encoder = ClipEncoder(cfg.data, self.model_config, env.device, dtype)
        self.step, self.position = 0, 0
        self.resumed_from = resume_from
        if resume_from is not None:
            self._load(resume_from)

    # ---- one step -------------------------------------------------------------------------------

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimizer step on this rank's slice of the global batch (G samples over the W / c
        data-parallel groups; c = run.context_parallel, 1 without context parallelism).

        batch: latents / noise (b, C, T, H, W), text (b, L, D), text_mask (b, L), camera (b, T, 20),
        plucker (b, 48, T, H, W), b = G · c / W ('clips': video and caption instead of latents and text).
        Under context parallelism every rank of a CP group holds the same b samples and keeps only its
        T / c latent frames of each per-frame input. Returns the global batch's loss and gradient norm.
        """
        cfg, env = self.cfg, self.env
        G, T, dev = cfg.data.batch_size, cfg.data.latent_frames, env.device
        g = torch.Generator().manual_seed(derive_seed(cfg.run.seed, self.step, 5))
        sigma, weight = cfg.flow.timesteps.sample(G, T, self.chunks, g)  # the global batch, every rank
        drop_text, drop_camera = cfg.flow.dropout.sample(G, g)
        b = G // env.dp_size
        mine = slice(env.dp_rank * b, (env.dp_rank + 1) * b)
        expected = self.position + env.dp_rank * b
        if int(batch["position"][0]) != expected:
            raise RuntimeError(
                f"data out of step: got sample {int(batch['position'][0])}, expected {expected}"
            )

        if self.encoder is not None:
            batch = self.encoder(batch)
        latents, noise, text = batch["latents"].to(dev), batch["noise"].to(dev), batch["text"].to(dev)
        text_mask = batch["text_mask"].to(dev) & ~drop_text[mine, None].to(dev)
        sigma, weight_mine = sigma[mine].to(dev), weight[mine].to(dev)
        camera = plucker = None
        if cfg.data.camera and not drop_camera:
            camera, plucker = batch["camera"].to(dev), batch["plucker"].to(dev)
        model = self.model
        if env.cp_size > 1:  # this rank's latent frames of every per-frame input
            cp = ContextParallel.from_process_group(T, env.cp_group)
            latents, noise = cp.local(latents, 2), cp.local(noise, 2)
            sigma, weight_mine = cp.local(sigma, 1), cp.local(weight_mine, 1)
            if camera is not None:
                camera, plucker = cp.local(camera, 1), cp.local(plucker, 2)
            model = functools.partial(self.model, cp=cp)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            loss = flow_matching_loss(
                model,
                latents,
                noise,
                sigma,
                text,
                text_mask,
                camera,
                plucker,
                chunks=self.chunks,
                frame_weight=weight_mine,
                kv_window=cfg.flow.kv_window,
                weight_total=weight.sum() / env.dp_size,  # data-parallel ranks' mean gradient = global
            )
        # Under context parallelism a rank's loss covers its frames only: the clip's loss is the sum
        # over its CP group. FSDP averages gradients over all W = dp_size · cp_size ranks, so scaling by
        # cp_size turns that average into the sum over each CP group averaged over the data-parallel groups.
        loss = loss * env.cp_size
        loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip or math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.position += G
        return {"loss": all_reduce_mean(loss.detach(), env), "grad_norm": full_tensor(grad_norm).detach()}

    # ---- the loop -------------------------------------------------------------------------------

    def train(self) -> dict:
        cfg, env = self.cfg, self.env
        say = _printer(env)
        if env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(dump_config(cfg))
        say(
            f"sanawm train: writing to {self.out_dir.resolve()} (config.yaml, metrics.jsonl, checkpoints/)"
            + (f"; resuming from {self.resumed_from} at step {self.step}" if self.resumed_from else "")
        )
        if cfg.run.precision == "bf16" and not self.bf16:
            say("sanawm train: run.precision=bf16 autocasts on CUDA only; this CPU run computes in fp32")
        metrics = MetricsLog(self.out_dir, env.is_main, cfg.run.tensorboard, self.step, say)
        loader = build_loader(
            self.dataset, cfg.data, self.model_config, cfg.run.seed, self.position, env.dp_rank, env.dp_size
        )
        bar = _progress(cfg, env, self.step)
        last_ckpt, last_loss = self.resumed_from, None
        losses, t0, steps0 = [], time.perf_counter(), self.step
        batches = iter(loader)
        self.model.train()
        started, stopped_early = time.perf_counter(), False
        saved_step = self.step if self.resumed_from else None  # the same on every rank (save is collective)
        while self.step < cfg.run.steps:
            if self._out_of_time(started):
                stopped_early = True
                say(f"sanawm train: time limit ({cfg.run.time_limit_minutes:g} min) hit at step {self.step}")
                if saved_step != self.step:
                    last_ckpt = self.save()
                    say(f"sanawm train: checkpoint {last_ckpt}")
                break
            lr = self.scheduler.get_last_lr()[0]
            out = self.train_step(next(batches))
            losses.append(out["loss"])
            bar.update(1)
            if self.step % cfg.run.log_every == 0 or self.step == cfg.run.steps:
                dt = time.perf_counter() - t0
                last_loss = torch.stack(losses).float().mean().item()
                row = {
                    "step": self.step,
                    "loss": last_loss,
                    "lr": lr,
                    "grad_norm": out["grad_norm"].item(),
                    "it_s": (self.step - steps0) / dt,
                    "samples_s": (self.step - steps0) * cfg.data.batch_size / dt,
                }
                if env.device.type == "cuda":
                    row["max_mem_gb"] = torch.cuda.max_memory_allocated(env.device) / 2**30
                metrics.write(row)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
                losses, t0, steps0 = [], time.perf_counter(), self.step
            if self.step % cfg.run.ckpt_every == 0 or self.step == cfg.run.steps:
                last_ckpt, saved_step = self.save(), self.step
                say(f"sanawm train: checkpoint {last_ckpt}")
        bar.close()
        metrics.close()
        return {
            "out_dir": str(self.out_dir),
            "step": self.step,
            "checkpoint": None if last_ckpt is None else str(last_ckpt),
            "loss": last_loss,
            "world_size": env.world_size,
            "stopped_at_time_limit": stopped_early,
        }

    def _out_of_time(self, started: float) -> bool:
        """Whether run.time_limit_minutes has passed, agreed over ranks (any rank out of time stops all)."""
        limit = self.cfg.run.time_limit_minutes
        if limit is None:
            return False
        flag = torch.tensor(float(time.perf_counter() - started > 60 * limit), device=self.env.device)
        return bool(all_reduce_mean(flag, self.env).item() > 0)

    # ---- checkpoints ----------------------------------------------------------------------------

    def save(self) -> Path | None:
        """Gather full states (collective), write on rank 0; returns the folder (None on other ranks)."""
        env = self.env
        model = full_model_state(self.model)
        ema = self.ema.full_state() if self.ema is not None else None
        optimizer = {"optimizer": full_optimizer_state(self.model, self.optimizer)}
        optimizer["scheduler"] = self.scheduler.state_dict()
        rngs = gather_objects(capture_rng(), env)
        path = None
        if env.is_main:
            trainer = {
                "step": self.step,
                "position": self.position,
                "world_size": env.world_size,
                "rng": rngs,
            }
            path = save_checkpoint(
                self.ckpt_root,
                self.step,
                model=model,
                ema=ema,
                optimizer=optimizer,
                trainer=trainer,
                config_yaml=dump_config(self.cfg),
                model_config=self.model_config,
                keep=self.cfg.run.keep_checkpoints,
            )
        barrier(env)
        return path

    def _load(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        load_model_state(self.model, ckpt.model)
        load_optimizer_state(self.model, self.optimizer, ckpt.optimizer["optimizer"])
        self.scheduler.load_state_dict(ckpt.optimizer["scheduler"])
        if self.ema is not None:
            if ckpt.ema is None:
                _printer(self.env)(f"sanawm train: {path} has no EMA; the EMA starts from its weights")
            self.ema.load(ckpt.ema or ckpt.model)
        self.step, self.position = int(ckpt.trainer["step"]), int(ckpt.trainer["position"])
        rngs = ckpt.trainer["rng"]
        restore_rng(rngs[self.env.rank] if len(rngs) == self.env.world_size else rngs[0])


# ---- pieces ---------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig) -> SanaWMTransformer:
    """The network on the CPU in fp32: fresh, or with `model.init_from` weights. Parameters the forward
    never reads (the 'compat' group; the camera and Plücker branches when data.camera is off) are
    frozen, so AdamW neither updates nor decays them."""
    model = SanaWMTransformer(cfg.model_config())
    if cfg.model.init_from is not None:
        state = load_weights(cfg.model.init_from, cfg.model.init_weights)
        want = model.state_dict()
        missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
        bad = [k for k in set(want) & set(state) if want[k].shape != state[k].shape]
        if missing or unexpected or bad:
            raise ValueError(
                f"model.init_from {cfg.model.init_from} does not fit the model {cfg.model.preset} "
                f"{cfg.model.overrides or ''}: {len(missing)} missing keys {missing[:3]}, {len(unexpected)} "
                f"unexpected {unexpected[:3]}, {len(bad)} of another shape {sorted(bad)[:3]}; set "
                "model.preset / model.overrides to its architecture, or model.preset=null to take it as is"
            )
        model.load_state_dict(state)
    groups = model.parameter_groups()
    frozen = ["compat"] + ([] if cfg.data.camera else ["camera", "plucker"])
    for name in frozen:
        for p in groups[name]:
            p.requires_grad_(False)
    return model


def checkpoint_blocks(model: SanaWMTransformer) -> None:
    """Activation checkpointing: each block keeps only its inputs and recomputes its activations in the
    backward pass. Wraps the block instances' forward; modules and state-dict keys are unchanged."""
    for block in model.blocks:
        block.forward = functools.partial(_checkpointed, block.forward)


def _checkpointed(forward, *args, **kwargs):
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def build_optimizer(model: nn.Module, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and conv kernels, none on biases, norms, gates, modulation tables."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and not name.endswith("scale_shift_table") else plain).append(p)
    groups = [{"params": decay, "weight_decay": optim.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=optim.lr, betas=optim.betas, eps=optim.eps, foreach=True
    )


def lr_factor(step: int, optim: OptimSection, steps: int) -> float:
    """Multiplier of optim.lr at a step: linear warm-up to 1, then 1 or a cosine down to min_lr_ratio."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - optim.warmup_steps) / max(1, steps - optim.warmup_steps))
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """fp32 exponential moving average of the weights, sharded like them under FSDP2.

    After each step: ema ← decay · ema + (1 − decay) · weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            if p.requires_grad:
                self.shadow[name].lerp_(p.detach().float(), 1 - self.decay)

    def full_state(self) -> dict[str, torch.Tensor]:
        """Whole CPU tensors, keyed like the model's state dict. Collective."""
        return {n: full_tensor(t).cpu() for n, t in self.shadow.items()}

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        for n, t in self.shadow.items():
            t.copy_(shard_like(state[n], t))


class MetricsLog:
    """metrics.jsonl (one JSON object per logged step) and TensorBoard scalars when it is installed.
    On resume, rows past the checkpoint's step (logged before the interruption) are dropped."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, start_step: int, say) -> None:
        self.enabled, self.writer = enabled, None
        self.path = out_dir / "metrics.jsonl"
        if not enabled:
            return
        rows = []
        if start_step > 0 and self.path.is_file():
            rows = [
                r for r in self.path.read_text().splitlines() if r and json.loads(r)["step"] <= start_step
            ]
        self.path.write_text("".join(r + "\n" for r in rows))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                say("sanawm train: tensorboard is not installed; metrics go to metrics.jsonl only")
            else:
                self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step or None)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k != "step":
                    self.writer.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _check_out_dir(out_dir: Path, ckpt_root: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; refuses to mix two runs in one folder."""
    latest = latest_checkpoint(ckpt_root)
    if resume:
        if latest is None:
            raise ValueError(
                f"--resume but {ckpt_root} holds no checkpoint; drop --resume to start a fresh run"
            )
        return latest
    if list_checkpoints(ckpt_root):
        raise ValueError(
            f"{out_dir} already holds checkpoints (latest {latest.name}); pass --resume to continue that "
            "run or choose another --run.out_dir"
        )
    return None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _printer(env: DistEnv):
    from tqdm import tqdm

    return tqdm.write if env.is_main else (lambda *_: None)


def _progress(cfg: TrainConfig, env: DistEnv, start: int):
    from tqdm import tqdm

    return tqdm(
        total=cfg.run.steps,
        initial=start,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not (env.is_main and cfg.run.progress),
    )


__all__ = ["EMA", "MetricsLog", "Trainer", "build_model", "build_optimizer", "checkpoint_blocks", "lr_factor"]
