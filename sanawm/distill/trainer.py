"""The two distillation stages as runs: ODE regression (`OdeDistiller`) and self-forcing DMD
(`DmdDistiller`). Each writes, like `sanawm train`, config.yaml, metrics.jsonl and atomic checkpoints
(student weights + EMA, optimizer(s), step and data position) under run.out_dir; `--resume` continues
exactly: every random draw is a function of (run.seed, step) or (run.seed, sample position).

    OdeDistiller(load_distill_config("distill-ode-smoke", ["--teacher.path=..."])).train()

One process, one device (torchrun is refused with a clear error).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..model.ops.gdn import set_gdn_kernel
from ..model.transformer import SanaWMTransformer
from ..sampling import Conditions, EulerSchedule, FewStepSchedule, Guidance
from ..training.checkpoint import capture_rng, load_checkpoint, load_model, save_checkpoint
from ..training.data import build_dataset, build_loader, derive_seed
from ..training.distributed import init_distributed
from ..training.trainer import (
    EMA,
    MetricsLog,
    _check_out_dir,
    _seed_everything,
    build_optimizer,
    checkpoint_blocks,
    lr_factor,
)
from .config import DistillConfig, dump_distill_config
from .diagnostics import CameraProbe
from .dmd import critic_loss, distribution_matching, draw_sigma
from .ode import TrajectoryDataset, build_trajectories, ode_regression_loss
from .rollout import self_forcing_rollout


def load_network(path, weights: str = "ema") -> SanaWMTransformer:
    """A network on the CPU in fp32 from a pipeline folder (its transformer/), a diffusers transformer
    folder or a sanawm run / checkpoint folder ('ema' or 'model' weights)."""
    folder = Path(path)
    if (folder / "transformer" / "config.json").is_file():
        folder = folder / "transformer"
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist: pass a pipeline, transformer or run folder")
    return load_model(folder, weights)


class _Distiller:
    """What both stages share: teacher, student (+ EMA, AdamW), checkpoints, metrics, the loop."""

    name = "distill"
    command = "distill"  # the progress bar reads "{command} {name}"

    def __init__(self, cfg: DistillConfig, resume: bool = False) -> None:
        self.cfg = cfg
        env = init_distributed(cfg.run.device)
        if env.distributed:
            raise ValueError("sanawm distill runs in one process on one device; start it without torchrun")
        self.device = env.device
        if cfg.run.gdn_kernel is not None:
            set_gdn_kernel(cfg.run.gdn_kernel)
        if cfg.data.source == "clips":
            raise ValueError(
                "sanawm distill reads conditions from data.source 'latents' or 'synthetic'; encode the clips "
                "once with `sanawm cache-latents DATASET --vae VAE --out CACHE` and pass "
                "--data.source=latents --data.path=CACHE"
            )
        self.out_dir = Path(cfg.run.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.resumed_from = _check_out_dir(self.out_dir, self.ckpt_root, resume)
        _seed_everything(cfg.run.seed)
        self.bf16 = cfg.run.precision == "bf16" and self.device.type == "cuda"
        self.teacher = self._frozen(load_network(cfg.teacher.path, cfg.teacher.weights))
        init = cfg.student.init_from or cfg.teacher.path
        self.student = self._trainable(
            load_network(init, cfg.student.init_weights if cfg.student.init_from else cfg.teacher.weights)
        )
        self.model_config = self.student.cfg
        self.optimizer, self.scheduler = self._optimizer(self.student, cfg.optim, self._optimizer_steps())
        self.ema = EMA(self.student, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
        self.schedule = FewStepSchedule(tuple(cfg.student.timesteps))
        self.step, self.position = 0, 0

    # ---- pieces ---------------------------------------------------------------------------------

    def _frozen(self, model: SanaWMTransformer) -> SanaWMTransformer:
        dtype = (
            torch.bfloat16
            if self.cfg.teacher.dtype == "bf16" and self.device.type == "cuda"
            else torch.float32
        )
        return model.to(self.device, dtype).eval().requires_grad_(False)

    def _trainable(self, model: SanaWMTransformer) -> SanaWMTransformer:
        if self.cfg.run.activation_checkpointing:
            checkpoint_blocks(model)
        groups = model.parameter_groups()
        for name in ["compat"] + ([] if self.cfg.data.camera else ["camera", "plucker"]):
            for p in groups[name]:
                p.requires_grad_(False)
        return model.to(self.device).train()

    def _optimizer(self, model, optim, steps):
        opt = build_optimizer(model, optim)
        return opt, LambdaLR(opt, functools.partial(lr_factor, optim=optim, steps=steps))

    def _optimizer_steps(self) -> int:
        return self.cfg.run.steps

    def _update(self, model, optimizer, scheduler, clip) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, clip or float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16)

    def _conditions(self, batch: dict, frames: int) -> Conditions:
        dev = self.device
        camera = plucker = None
        if self.cfg.data.camera:
            camera = batch["camera"][:, :frames].to(dev)
            plucker = batch["plucker"][:, :, :frames].to(dev)
        return Conditions(batch["text"].to(dev), batch["text_mask"].to(dev), camera, plucker)

    def _say(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"sanawm distill {self.name}: {text}")

    # ---- the loop -------------------------------------------------------------------------------

    def dataset(self):
        raise NotImplementedError

    def train_step(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    def probe_batch(self, dataset) -> dict | None:
        """The camera probe's fixed batch: clean (B, C, T, H, W) latents, camera, plucker, text,
        text_mask; None: no probe (the default; the two distillation stages have one)."""
        return None

    def _probing(self) -> bool:
        return self.cfg.camera_gap.every > 0 and self.cfg.data.camera

    def camera_probe(self, dataset) -> CameraProbe | None:
        """The camera-sensitivity probe on `probe_batch` (None without one); the teacher's gaps are
        computed here, once."""
        batch = self.probe_batch(dataset)
        if batch is None:
            return None
        cfg = self.cfg
        clean = batch["clean"].float().to(self.device)
        T = clean.shape[2]
        g = torch.Generator().manual_seed(derive_seed(cfg.run.seed, 0, 40))
        noise = torch.randn(clean.shape, generator=g).to(self.device)
        with self._autocast():
            return CameraProbe.build(
                self.teacher,
                clean,
                noise,
                self._conditions(batch, T),
                self.schedule.sigmas()[:-1].tolist(),
                cfg.stream.chunks(T),
                cfg.stream.kv_window,
                teacher_bidirectional=cfg.teacher.sampler == "bidirectional",
            )

    def _probe_metrics(self, probe: CameraProbe | None) -> dict[str, float]:
        if probe is None:
            return {}
        with self._autocast():
            return probe.metrics(self.student)

    def train(self) -> dict:
        from tqdm import tqdm

        cfg = self.cfg
        dataset = self.dataset()
        if self.resumed_from is not None:
            self._load(self.resumed_from)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yaml").write_text(dump_distill_config(cfg))
        self._say(
            f"writing to {self.out_dir.resolve()} (config.yaml, metrics.jsonl, checkpoints/)"
            + (f"; resuming from {self.resumed_from} at step {self.step}" if self.resumed_from else "")
        )
        metrics = MetricsLog(self.out_dir, True, cfg.run.tensorboard, self.step, self._say)
        probe = self.camera_probe(dataset)
        probe_every = cfg.camera_gap.every if probe is not None else 0
        if probe is not None and self.step == 0:
            row = {"step": 0, **self._probe_metrics(probe)}
            metrics.write(row)
            self._say(", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step") + " (step 0)")
        loader = build_loader(dataset, cfg.data, self.model_config, cfg.run.seed, self.position, 0, 1)
        batches = iter(loader)
        bar = tqdm(
            total=cfg.run.steps,
            initial=self.step,
            desc=f"{self.command} {self.name}",
            unit="step",
            dynamic_ncols=True,
            disable=not cfg.run.progress,
        )
        started, t0, steps0 = time.perf_counter(), time.perf_counter(), self.step
        last_ckpt, saved_step, stopped_early, rows = (
            self.resumed_from,
            self.step if self.resumed_from else None,
            False,
            [],
        )
        while self.step < cfg.run.steps:
            limit = cfg.run.time_limit_minutes
            if limit is not None and time.perf_counter() - started > 60 * limit:
                stopped_early = True
                self._say(f"time limit ({limit:g} min) hit at step {self.step}")
                if saved_step != self.step:
                    last_ckpt = self.save()
                break
            batch = next(batches)
            lr = self.scheduler.get_last_lr()[0]
            out = self.train_step(batch)
            self.step += 1
            if probe is not None and self.step % probe_every == 0:
                out.update(self._probe_metrics(probe))
            rows.append(out)
            self.position += cfg.data.batch_size
            bar.update(1)
            if self.step % cfg.run.log_every == 0 or self.step == cfg.run.steps:
                dt = time.perf_counter() - t0
                keys = sorted({k for r in rows for k in r})
                row = {"step": self.step, **{k: _mean(r.get(k) for r in rows) for k in keys}, "lr": lr}
                row["it_s"] = (self.step - steps0) / dt
                if self.device.type == "cuda":
                    row["max_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                metrics.write(row)
                bar.set_postfix({k: f"{row[k]:.4g}" for k in keys[:3] if row[k] is not None})
                rows, t0, steps0 = [], time.perf_counter(), self.step
            if self.step % cfg.run.ckpt_every == 0 or self.step == cfg.run.steps:
                last_ckpt, saved_step = self.save(), self.step
                self._say(f"checkpoint {last_ckpt}")
        bar.close()
        metrics.close()
        return {
            "out_dir": str(self.out_dir),
            "step": self.step,
            "checkpoint": None if last_ckpt is None else str(last_ckpt),
            "stopped_at_time_limit": stopped_early,
        }

    # ---- checkpoints ----------------------------------------------------------------------------

    def _extra_state(self) -> dict:
        return {}

    def _load_extra(self, state: dict) -> None:
        pass

    def save(self) -> Path:
        optimizer = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        optimizer.update(self._extra_state())
        return save_checkpoint(
            self.ckpt_root,
            self.step,
            model={k: v.detach().float().cpu() for k, v in self.student.state_dict().items()},
            ema=None if self.ema is None else self.ema.full_state(),
            optimizer=optimizer,
            trainer={"step": self.step, "position": self.position, "world_size": 1, "rng": [capture_rng()]},
            config_yaml=dump_distill_config(self.cfg),
            model_config=self.model_config,
            keep=self.cfg.run.keep_checkpoints,
        )

    def _load(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        self.student.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer["optimizer"])
        self.scheduler.load_state_dict(ckpt.optimizer["scheduler"])
        if self.ema is not None:
            self.ema.load(ckpt.ema or ckpt.model)
        self._load_extra(ckpt.optimizer)
        self.step, self.position = int(ckpt.trainer["step"]), int(ckpt.trainer["position"])


class OdeDistiller(_Distiller):
    """Stage 1: build (or finish) the teacher's trajectory dataset, then regress the student onto it."""

    name = "ode"

    def trajectories_dir(self) -> Path:
        return Path(self.cfg.ode.dataset) if self.cfg.ode.dataset else self.out_dir / "trajectories"

    def build(self, progress: bool | None = None) -> Path:
        """The trajectory folder, built first when it is incomplete (resumable)."""
        from tqdm import tqdm

        cfg = self.cfg
        folder = self.trajectories_dir()
        T = cfg.data.latent_frames
        source = build_dataset(cfg.data, self.model_config, cfg.run.seed)
        guidance = Guidance(
            cfg.teacher.guidance, cfg.teacher.guidance_drops_text, cfg.teacher.guidance_drops_camera
        )
        settings = {
            "teacher": str(Path(cfg.teacher.path).resolve()),
            "teacher_weights": cfg.teacher.weights,
            "data": [cfg.data.source, cfg.data.path, list(cfg.data.size), cfg.data.camera],
        }
        bar = tqdm(
            total=cfg.ode.samples,
            desc="teacher trajectories",
            unit="clip",
            disable=not (cfg.run.progress if progress is None else progress),
        )

        def report(done, total):
            bar.n = done
            bar.refresh()

        build_trajectories(
            folder,
            self.teacher,
            source,
            samples=cfg.ode.samples,
            latent_frames=T,
            chunks=cfg.stream.chunks(T) if cfg.teacher.sampler == "chunked" else None,
            schedule=EulerSchedule(cfg.teacher.steps, cfg.teacher.shift),
            keep_sigmas=self.schedule.sigmas().tolist(),
            guidance=guidance,
            kv_window=cfg.stream.kv_window,
            seed=cfg.run.seed,
            settings=settings,
            shard_size=cfg.ode.shard_size,
            batch_size=cfg.ode.batch_size,
            device=self.device,
            bf16=self.bf16,
            progress=report,
        )
        bar.close()
        return folder

    def dataset(self):
        folder = self.trajectories_dir()
        self._say(f"teacher trajectories: {folder}")
        self.build()  # refuses a folder of other settings; computes only what is missing
        return TrajectoryDataset(folder)

    def probe_batch(self, dataset) -> dict | None:
        """The first camera_gap.samples trajectories; the teacher's samples are the clean context."""
        if not self._probing():
            return None
        items = [dataset[k] for k in range(min(self.cfg.camera_gap.samples, len(dataset)))]
        batch = {k: torch.stack([it[k] for it in items]) for k in ("camera", "plucker", "text", "text_mask")}
        batch["clean"] = torch.stack([it["states"][-1] for it in items])
        return batch

    def train_step(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        states = batch["states"].to(self.device)
        B, S, T = states.shape[0], states.shape[1], states.shape[3]
        chunks = cfg.stream.chunks(T)
        g = torch.Generator().manual_seed(derive_seed(cfg.run.seed, self.step, 30))
        levels = torch.randint(0, S - 1, (B, len(chunks)), generator=g)
        with self._autocast():
            loss = ode_regression_loss(
                self.student,
                states,
                self.schedule.sigmas(),
                levels,
                self._conditions(batch, T),
                chunks,
                cfg.stream.kv_window,
                backward=True,
            )
        norm = self._update(self.student, self.optimizer, self.scheduler, cfg.optim.grad_clip)
        if self.ema is not None:
            self.ema.update(self.student)
        return {"loss": loss.item(), "grad_norm": norm.item()}


class DmdDistiller(_Distiller):
    """Stage 2: self-forcing rollouts of the student, DMD against the frozen teacher (real score) and a
    fake score trained alongside (critic). Every step updates the critic; every `dmd.critic_steps`-th
    step first updates the student."""

    name = "dmd"

    def __init__(self, cfg: DistillConfig, resume: bool = False) -> None:
        super().__init__(cfg, resume)
        longest = max(t for _, t in cfg.dmd.curriculum)
        if cfg.data.latent_frames < longest:
            raise ValueError(
                f"dmd.curriculum goes to {longest} latent frames but data.latent_frames is "
                f"{cfg.data.latent_frames}; set --data.latent_frames={longest} (conditions for the longest "
                "rollout)"
            )
        self.fake = self._trainable(load_network(cfg.teacher.path, cfg.teacher.weights))
        self.critic_optimizer, self.critic_scheduler = self._optimizer(
            self.fake, cfg.dmd.critic_optim, cfg.run.steps
        )
        d = cfg.dmd
        self.real_guidance = Guidance(
            d.real_guidance, cfg.teacher.guidance_drops_text, cfg.teacher.guidance_drops_camera
        )

    def _optimizer_steps(self) -> int:
        return -(-self.cfg.run.steps // self.cfg.dmd.critic_steps)

    def dataset(self):
        return build_dataset(self.cfg.data, self.model_config, self.cfg.run.seed)

    def probe_batch(self, dataset) -> dict | None:
        """The first camera_gap.samples data items at the curriculum's first length (their latents are
        the clean context)."""
        if not self._probing():
            return None
        n = self.cfg.camera_gap.samples
        n = min(n, len(dataset)) if hasattr(dataset, "__len__") else n
        items = [dataset[k] for k in range(n)]
        frames = self.cfg.dmd.latent_frames(0)
        batch = {k: torch.stack([it[k] for it in items]) for k in ("camera", "plucker", "text", "text_mask")}
        batch["clean"] = torch.stack([it["latents"][:, :frames] for it in items])
        return batch

    def _extra_state(self) -> dict:
        return {
            "critic": {
                "model": {k: v.detach().float().cpu() for k, v in self.fake.state_dict().items()},
                "optimizer": self.critic_optimizer.state_dict(),
                "scheduler": self.critic_scheduler.state_dict(),
            }
        }

    def _load_extra(self, state: dict) -> None:
        self.fake.load_state_dict(state["critic"]["model"])
        self.critic_optimizer.load_state_dict(state["critic"]["optimizer"])
        self.critic_scheduler.load_state_dict(state["critic"]["scheduler"])

    def rollout(self, batch: dict, frames: int, g: torch.Generator, grad: bool) -> torch.Tensor:
        """The student's rollout of `frames` latent frames from the batch's conditions and noise, with
        exit steps drawn per chunk from `g` and re-noising from `g`."""
        cfg, dev = self.cfg, self.device
        chunks = cfg.stream.chunks(frames)
        latents, noise = batch["latents"], batch["noise"][:, :, :frames]
        last = len(self.schedule.sigmas()) - 2
        exits = torch.randint(0, last + 1, (len(chunks),), generator=g).tolist()
        ends = torch.tensor(chunks).cumsum(0)
        keep = cfg.dmd.grad_frames
        grads = [bool(e > frames - keep) if keep is not None else True for e in ends]

        def renoise(j, i):
            return torch.randn(noise.shape[0], noise.shape[1], chunks[j], *noise.shape[3:], generator=g).to(
                dev
            )

        with torch.set_grad_enabled(grad), self._autocast():
            return self_forcing_rollout(
                self.student,
                noise.to(dev),
                latents[:, :, :1].to(dev),
                self._conditions(batch, frames),
                chunks,
                self.schedule,
                cfg.stream.kv_window,
                renoise,
                exits,
                grads,
            )

    def _score_chunks(self, frames: int):
        return self.cfg.stream.chunks(frames) if self.cfg.dmd.score_mode == "chunk_causal" else None

    def train_step(self, batch: dict) -> dict[str, float]:
        cfg, d = self.cfg, self.cfg.dmd
        frames = d.latent_frames(self.step)
        cond = self._conditions(batch, frames)
        chunks, kv = self._score_chunks(frames), cfg.stream.kv_window
        g = torch.Generator().manual_seed(derive_seed(cfg.run.seed, self.step, 20))
        out: dict[str, float] = {"latent_frames": float(frames)}
        x = None
        if self.step % d.critic_steps == 0:  # the student's turn
            x = self.rollout(batch, frames, g, grad=True)
            sigma = draw_sigma(x.shape[0], g, d.min_sigma, d.max_sigma, d.sigma_shift)
            noise = torch.randn(x.shape, generator=g).to(self.device)
            with self._autocast():
                loss, diag = distribution_matching(
                    x, self.teacher, self.fake, cond, sigma, noise, self.real_guidance, chunks, kv
                )
            loss.backward()
            norm = self._update(self.student, self.optimizer, self.scheduler, cfg.optim.grad_clip)
            if self.ema is not None:
                self.ema.update(self.student)
            out.update(dmd_loss=loss.item(), grad_norm=norm.item(), **diag)
            x = x.detach()
        else:
            x = self.rollout(batch, frames, g, grad=False)
        sigma = draw_sigma(x.shape[0], g, d.min_sigma, d.max_sigma, d.sigma_shift)
        noise = torch.randn(x.shape, generator=g).to(self.device)
        with self._autocast():
            loss = critic_loss(self.fake, x, cond, sigma, noise, chunks, kv)
        loss.backward()
        norm = self._update(self.fake, self.critic_optimizer, self.critic_scheduler, d.critic_optim.grad_clip)
        out.update(critic_loss=loss.item(), critic_grad_norm=norm.item())
        return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


__all__ = ["DmdDistiller", "OdeDistiller", "load_network"]
