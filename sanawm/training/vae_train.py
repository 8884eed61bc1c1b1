"""Training our small video VAE (`sanawm.vae.SmallVideoVAE`) on clip windows.

    summary = train_vae(VAETrainConfig(dataset="data/worlds", out_dir="runs/vae", steps=2000))
    vae = SmallVideoVAE.from_pretrained("runs/vae/vae")

Loss: `sanawm.vae.vae_loss` (L1 + L2 reconstruction of a posterior sample + a small KL; no perceptual
term). AdamW with linear warm-up. Sample k of the run (step s holds k = s·B .. s·B + B − 1) is window
(seed, epoch) of clip perm_epoch[k mod n] (`sanawm.data.ClipDataset`), and the posterior noise of step s
comes from a generator seeded by (seed, s): so a resumed run repeats an uninterrupted one exactly.
Writes metrics.jsonl, checkpoints/step_NNNNNNNN/ (weights, optimizer, step; written to a temporary
folder then renamed) and, at the end, vae/: the weights with latent statistics estimated on
`stats_samples` windows (`estimate_latent_stats`), loadable with `SmallVideoVAE.from_pretrained`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset, Sampler

from ..vae import SMALL_VAE_PRESETS, SmallVideoVAE, estimate_latent_stats, vae_loss
from .data import derive_seed


@dataclass
class VAETrainConfig:
    dataset: str
    out_dir: str = "runs/vae"
    preset: str = "small"
    frames: int = 17
    size: tuple[int, int] = (256, 256)
    frame_stride: int = 1
    steps: int = 1000
    batch_size: int = 4
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: str = "constant"  # or "cosine": down to min_lr_ratio · lr at `steps`
    min_lr_ratio: float = 0.1
    time_limit_minutes: float | None = None  # stop early (with a checkpoint and the vae/ folder)
    init_from: str | None = None  # start from a SmallVideoVAE folder of the same preset (e.g. a shipped one)
    # "all", or "decoder": the encoder and the latent statistics stay frozen, so the latent space (and a
    # world model trained in it) is unchanged while reconstructions improve; needs init_from
    train_part: str = "all"
    grad_clip: float | None = 1.0
    kl_weight: float = 1e-4
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    stats_samples: int = 64
    device: str = "auto"
    precision: str = "bf16"
    workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.preset not in SMALL_VAE_PRESETS:
            raise ValueError(f"unknown VAE preset {self.preset!r}; choose one of {sorted(SMALL_VAE_PRESETS)}")
        if self.frames < 1 or (self.frames - 1) % 8:
            raise ValueError(f"--frames must be 8k+1 (9, 17, 33, ...), got {self.frames}")
        if any(s < 32 or s % 32 for s in self.size):
            raise ValueError(f"--size {list(self.size)} must be H,W pixels, positive multiples of 32")
        if (
            min(self.steps, self.stats_samples) < 0
            or min(self.batch_size, self.log_every, self.ckpt_every) < 1
        ):
            raise ValueError("steps, stats_samples ≥ 0; batch_size, log_every, ckpt_every ≥ 1")
        if self.schedule not in ("constant", "cosine") or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("schedule must be constant or cosine, min_lr_ratio in [0, 1]")
        if self.time_limit_minutes is not None and self.time_limit_minutes <= 0:
            raise ValueError(f"time_limit_minutes must be > 0 or None, got {self.time_limit_minutes}")
        if self.train_part not in ("all", "decoder"):
            raise ValueError(f"train_part must be 'all' or 'decoder', got {self.train_part!r}")
        if self.train_part == "decoder" and self.init_from is None:
            raise ValueError(
                "decoder-only training keeps a trained encoder's latent space: pass --init-from VAE_FOLDER"
            )
        if self.precision not in ("fp32", "bf16") or self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("precision must be fp32 or bf16, device auto, cpu or cuda")


class WindowSamples(Dataset):
    """Run position k -> video (3, F, H, W) of window (seed, epoch) of clip perm_epoch[k mod n]."""

    def __init__(self, cfg: VAETrainConfig) -> None:
        from ..data import ClipDataset

        self.cfg = cfg
        self.n = len(ClipDataset(cfg.dataset, cfg.frames, size=cfg.size, frame_stride=cfg.frame_stride))
        self._epoch: tuple[int, object, torch.Tensor] | None = None

    def __getitem__(self, k: int) -> torch.Tensor:
        from ..data import ClipDataset

        epoch, pos = divmod(k, self.n)
        if self._epoch is None or self._epoch[0] != epoch:
            cfg = self.cfg
            ds = ClipDataset(
                cfg.dataset, cfg.frames, size=cfg.size, frame_stride=cfg.frame_stride, seed=cfg.seed + epoch
            )
            perm = torch.randperm(
                self.n, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch))
            )
            self._epoch = (epoch, ds, perm)
        _, ds, perm = self._epoch
        return ds[int(perm[pos])]["video"].permute(1, 0, 2, 3).contiguous()


class _From(Sampler[int]):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        k = self.start
        while True:
            yield k
            k += 1


def train_vae(cfg: VAETrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a SmallVideoVAE; returns a summary with the final loss and the vae/ folder."""
    from tqdm import tqdm

    out = Path(cfg.out_dir)
    ckpts = out / "checkpoints"
    latest = _latest(ckpts)
    if latest is not None and not resume:
        raise ValueError(
            f"{out} already holds checkpoints ({latest.name}); pass --resume or choose another --out"
        )
    if resume and latest is None:
        raise ValueError(f"--resume but {ckpts} holds no checkpoint; drop --resume to start a fresh run")
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    bf16 = cfg.precision == "bf16" and device.type == "cuda"

    torch.manual_seed(cfg.seed)
    vae = SmallVideoVAE(SMALL_VAE_PRESETS[cfg.preset]).to(device)
    if cfg.init_from is not None and latest is None:
        start = SmallVideoVAE.from_pretrained(cfg.init_from)
        if start.config != vae.config:
            raise ValueError(
                f"--init-from {cfg.init_from} holds a VAE of config {start.config}, not preset "
                f"{cfg.preset!r} ({vae.config}); pass the matching --preset"
            )
        vae.load_state_dict(start.float().state_dict())
    if cfg.train_part == "decoder":
        vae.encoder.requires_grad_(False)
    trained = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, cfg=cfg))
    step = 0
    if latest is not None:
        vae.load_state_dict(load_file(str(latest / "model.safetensors")))
        state = torch.load(latest / "optimizer.pt", map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = json.loads((latest / "state.json").read_text())["step"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    metrics = out / "metrics.jsonl"
    rows = metrics.read_text().splitlines() if metrics.is_file() and step else []
    metrics.write_text("".join(r + "\n" for r in rows if r and json.loads(r)["step"] <= step))

    samples = WindowSamples(cfg)
    loader = DataLoader(
        samples, batch_size=cfg.batch_size, sampler=_From(step * cfg.batch_size), num_workers=cfg.workers
    )
    batches = iter(loader)
    bar = tqdm(total=cfg.steps, initial=step, desc="vae train", unit="step", disable=not cfg.progress)
    vae.train()
    last, acc, t0, s0 = None, [], time.perf_counter(), step
    started, limit = time.perf_counter(), cfg.time_limit_minutes
    while step < cfg.steps:
        if limit is not None and time.perf_counter() - started > 60 * limit:
            print(f"sanawm vae train: time limit ({limit:g} min) hit at step {step}", file=sys.stderr)
            if not (ckpts / f"step_{step:08d}").is_dir():
                _save(ckpts, step, vae, optimizer, scheduler, cfg.keep_checkpoints)
            break
        video = next(batches).to(device)
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, step, 7))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            losses = vae_loss(vae, video, kl_weight=cfg.kl_weight, generator=g)
        losses["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1
        acc.append(torch.stack([losses[k].detach().float() for k in ("loss", "l1", "l2", "kl")]))
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = torch.stack(acc).mean(0).tolist()
            dt = time.perf_counter() - t0
            row = dict(zip(("loss", "l1", "l2", "kl"), mean, strict=True))
            row = {"step": step, **row, "lr": lr, "grad_norm": float(grad_norm), "it_s": (step - s0) / dt}
            with open(metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{mean[0]:.4f}")
            last, acc, t0, s0 = mean[0], [], time.perf_counter(), step
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            _save(ckpts, step, vae, optimizer, scheduler, cfg.keep_checkpoints)
    bar.close()

    vae.eval()
    if cfg.train_part == "all":  # a decoder-only run keeps the encoder's statistics with the encoder
        n_stats = min(cfg.stats_samples, samples.n) or 1
        videos = (samples[k][None] for k in range(n_stats))
        mean, std = estimate_latent_stats(vae, videos)
        vae.set_latent_stats(mean.to(device), std.clamp_min(1e-4).to(device))
    final = out / "vae"
    tmp = out / "vae.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    vae.float().save_pretrained(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return {"out_dir": str(out), "step": step, "loss": last, "vae": str(final)}


def lr_factor(step: int, cfg: VAETrainConfig) -> float:
    """Multiplier of cfg.lr: linear warm-up, then constant or a cosine down to cfg.min_lr_ratio."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _latest(root: Path) -> Path | None:
    done = sorted(p for p in root.glob("step_*") if (p / "state.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _save(root: Path, step: int, vae, optimizer, scheduler, keep: int) -> Path:
    """checkpoints/step_N: written to a temporary folder, then renamed (a crash leaves no half folder)."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in vae.state_dict().items()},
        str(tmp / "model.safetensors"),
    )
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt"
    )
    (tmp / "state.json").write_text(json.dumps({"step": step}) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return final


__all__ = ["VAETrainConfig", "WindowSamples", "train_vae"]
