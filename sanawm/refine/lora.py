"""LoRA fine-tuning of the released LTX-2 refiner with the truncated-σ flow-matching objective (SPEC 5).

A training example is a stage-1 rollout and the ground-truth latents of the same frames, both
(B, C, F, H, W) in the stage-1 VAE's latent space. Training walks the clip exactly as inference does
(`LTX2Refiner.refine_block`): the first `sink_size` stage-1 frames are the clean attention sink, then
each block of `block_size` frames, with one ε per block, is noised to

    x_σs = (1 − σ_s)·x_stage1 + σ_s·ε,          v* = (x_σs − x_target) / σ_s,

the network's velocity at σ_s for that block, attending to [sink, history, block] K/V, is regressed
onto v* (mean squared error over all refined frames), and the block's σ = 0 K/V is then appended to
the history. Why chunk-causal and not whole-clip: the library transformer has no causal mask, only
the KV-cache modes its inference loop uses, so training through the same modes is the one way to
train the function that runs at inference (same RoPE offsets, same sink re-RoPE, same bounded history).

Choices, stated:
- The history is recorded from the *target* block (teacher forcing): at inference it holds the refined
  block, whose ideal is the target. The history K/V carry no gradient (the library detaches them);
  each block's loss is backpropagated on its own, so memory is one block's activations, not the clip's.
- σ: by default every block is trained at σ_s alone, the SPEC formula. With `sample_sigma=True`, each
  block draws σ ~ U(0, σ_s] and sits on the straight path from x_target to x_σs,
  x_σ = x_target + (σ/σ_s)·(x_σs − x_target), where the velocity is the same v*; this also trains the
  later Euler steps (σ = 0.725, 0.421875) that inference takes.

`RefinerLoRATrainer` holds the adapted refiner, an AdamW over the LoRA parameters only and the noise
generator; `save`/`resume` write and read a LoRA checkpoint folder atomically, and `load_lora` applies
a saved adapter to an `LTX2Refiner` for inference (merged into the base weights, or attached).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.checkpoint import checkpoint

from ..training.distributed import (
    DistEnv,
    full_optimizer_state,
    full_tensor,
    load_optimizer_state,
    shard_like,
)
from .base import RefinerPrompt
from .ltx2 import LTX2Refiner

ADAPTER = "refiner"
WEIGHTS, LORA_CONFIG, OPTIMIZER = "adapter.safetensors", "lora_config.json", "optimizer.pt"

# Video self-attention (attn1), text cross-attention (attn2) q/k/v/out and the video FFN linears of every
# block; the audio branch, which the refiner never runs, is left alone. peft full-matches this regex.
DEFAULT_TARGETS = (
    r".*transformer_blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)"
    r"|.*transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)"
)


@dataclass(frozen=True)
class RefinerLoRAConfig:
    """The adapter and the objective. rank 384 is the paper's; alpha defaults to the rank (scale 1)."""

    rank: int = 384
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = DEFAULT_TARGETS
    sigma: float = 0.909375
    sample_sigma: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1 (the paper uses 384); got {self.rank}")
        if not 0.0 < self.sigma <= 1.0:
            raise ValueError(f"the re-noising level σ_s must lie in (0, 1], e.g. 0.909375; got {self.sigma}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must lie in [0, 1); got {self.dropout}")

    def peft_config(self):
        from peft import LoraConfig

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha if self.alpha is not None else self.rank,
            lora_dropout=self.dropout,
            target_modules=targets,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        if not isinstance(self.target_modules, str):
            d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RefinerLoRAConfig:
        d = dict(d)
        if isinstance(d.get("target_modules"), list):
            d["target_modules"] = tuple(d["target_modules"])
        return cls(**d)


@dataclass(frozen=True)
class RefinerTrainBatch:
    """stage1 and target: latents (B, C, F, H, W) of the same frames; prompt: connector embeddings."""

    stage1: torch.Tensor
    target: torch.Tensor
    prompt: RefinerPrompt
    fps: float


# ---- adapter ---------------------------------------------------------------------------------------


def add_lora(refiner: LTX2Refiner, config: RefinerLoRAConfig) -> list[torch.nn.Parameter]:
    """Attach a fresh LoRA adapter to the refiner's transformer (in place; base weights frozen, adapter
    weights in fp32 whatever the base dtype); return the trainable LoRA parameters. LoRA B starts at
    zero, so the adapted refiner equals the base one."""
    transformer = refiner.transformer
    if getattr(transformer, "peft_config", None) and ADAPTER in transformer.peft_config:
        raise ValueError(
            "this refiner already carries a LoRA adapter; build a fresh LTX2Refiner to add another one"
        )
    transformer.requires_grad_(False)
    try:
        transformer.add_adapter(config.peft_config(), adapter_name=ADAPTER)
    except ValueError as e:
        raise ValueError(
            f"LoRA target_modules {config.target_modules!r} match no Linear layer of the refiner "
            "transformer; the default targets transformer_blocks.N.attn1/attn2.to_q/to_k/to_v/to_out.0 and "
            "ff.net.0.proj/ff.net.2"
        ) from e
    params = lora_parameters(transformer)
    if not params:
        raise ValueError(f"LoRA target_modules {config.target_modules!r} matched no layer of the refiner")
    for p in params:  # fp32 adapter next to a bf16 base: AdamW updates of bf16 weights would round away
        p.data = p.data.float()
    return params


def lora_parameters(transformer: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for n, p in transformer.named_parameters() if "lora_" in n]


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's whole weights on the CPU, keyed by parameter name (e.g.
    ...attn1.to_q.lora_A.refiner.weight). Collective under FSDP2: every rank must call it."""
    return {
        n: full_tensor(p.detach()).to("cpu").contiguous()
        for n, p in transformer.named_parameters()
        if "lora_" in n
    }


def enable_activation_checkpointing(transformer: torch.nn.Module) -> None:
    """Recompute each transformer block's activations during backward (non-reentrant
    `torch.utils.checkpoint`), so training holds one block's activations instead of all 48. In place,
    idempotent, state-dict keys unchanged. Only forwards with grad enabled are checkpointed: the KV-cache
    capture passes run under no_grad and so are never recomputed (recomputing them would store twice).
    The library's own `gradient_checkpointing` flag is not read by this model's forward."""
    for block in transformer.transformer_blocks:
        if getattr(block, "_sanawm_checkpointed", False):
            continue
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if not torch.is_grad_enabled():
                return _forward(*args, **kwargs)
            return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        block.forward = checkpointed
        block._sanawm_checkpointed = True


def shard_refiner(transformer: torch.nn.Module, env: DistEnv | None) -> torch.nn.Module:
    """FSDP2 over all ranks, like `sanawm.training.distributed.shard_model`: each transformer block is one
    all-gather unit, the root holds the rest. The frozen base weights are what sharding saves memory on;
    the LoRA weights ride along in the same units. No-op in one process. Tested on two CPU ranks (gloo)
    only, not on GPUs."""
    if env is None or not env.distributed:
        return transformer
    from torch.distributed.fsdp import fully_shard

    for block in transformer.transformer_blocks:
        fully_shard(block)
    fully_shard(transformer)
    return transformer


def load_lora(refiner: LTX2Refiner, folder: str | Path, *, merge: bool = True) -> LTX2Refiner:
    """Apply a saved LoRA checkpoint to `refiner` for inference (in place, returned for chaining).

    merge=True folds the adapter into the base weights (no LoRA cost at inference; the refiner then
    cannot be trained further); merge=False keeps it attached as separate layers."""
    folder = Path(folder)
    config = _read_config(folder)
    add_lora(refiner, config)
    _load_adapter_weights(refiner.transformer, load_file(folder / WEIGHTS), folder)
    refiner.transformer.requires_grad_(False)
    if merge:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in refiner.transformer.modules():
            if isinstance(module, BaseTunerLayer):
                module.merge(adapter_names=[ADAPTER])
    return refiner


# ---- objective -------------------------------------------------------------------------------------


def truncated_sigma_loss(
    refiner: LTX2Refiner,
    batch: RefinerTrainBatch,
    config: RefinerLoRAConfig,
    *,
    generator: torch.Generator | None = None,
    backward: bool = False,
) -> torch.Tensor:
    """Mean squared error between the refiner's velocity and v* over all refined frames, walking the clip
    chunk-causally (see the module docstring). Noise (and σ with `sample_sigma`) is drawn from
    `generator` block by block, ε first. With backward=True each block's share of the loss is
    backpropagated as soon as it is computed and the detached total is returned; otherwise the returned
    loss carries the graph of the whole clip."""
    stage1, target = _check_batch(refiner, batch)
    sched = refiner.schedule
    sink, num_frames = sched.sink_size, stage1.shape[2]
    total_frames = num_frames - sink
    with torch.no_grad():
        state = refiner.begin(stage1[:, :, :sink], batch.prompt, fps=batch.fps)
    sigma_s = config.sigma
    noise_device = generator.device if generator is not None else stage1.device
    losses: list[torch.Tensor] = []
    for start in range(sink, num_frames, sched.block_size):
        x1 = refiner._to_model(stage1[:, :, start : start + sched.block_size])
        x0 = refiner._to_model(target[:, :, start : start + sched.block_size])
        num = x1.shape[2]
        positions = refiner._start_block(state, num)
        eps = torch.randn(x1.shape, generator=generator, device=noise_device, dtype=torch.float32)
        x_s = (1.0 - sigma_s) * x1.float() + sigma_s * eps.to(x1.device)
        v_star = (x_s - x0.float()) / sigma_s
        sigma = sigma_s
        if config.sample_sigma:
            u = torch.rand((), generator=generator, device=noise_device, dtype=torch.float32)
            sigma = float((1.0 - u) * sigma_s)  # u in [0, 1) -> σ in (0, σ_s]
        x_sigma = x0.float() + (sigma / sigma_s) * (x_s - x0.float())
        velocity = refiner._forward(state, x_sigma.to(x1.dtype), sigma, positions, "inject")
        block_loss = F.mse_loss(velocity.float(), v_star) * (num / total_frames)
        if backward:
            block_loss.backward()
            block_loss = block_loss.detach()
        losses.append(block_loss)
        with torch.no_grad():
            refiner._record_block(state, x0, positions)
    return torch.stack(losses).sum()


# ---- training --------------------------------------------------------------------------------------


class RefinerLoRATrainer:
    """LoRA fine-tuning of an `LTX2Refiner`: AdamW over the adapter only, noise from its own generator;
    `seed` fixes both the adapter's initialisation and the noise.

    `train_step(batch)` returns the loss of that step (before the update). `save(folder)` writes the
    adapter weights, the config, the optimizer and the generator state atomically;
    `RefinerLoRATrainer.resume(refiner, folder)` continues bit-for-bit where it was saved.
    """

    def __init__(
        self,
        refiner: LTX2Refiner,
        config: RefinerLoRAConfig | None = None,
        *,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        seed: int = 0,
        env: DistEnv | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        self.refiner = refiner
        self.config = config or RefinerLoRAConfig()
        self.env = env
        device = refiner.transformer.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # LoRA A's random init: the same seed gives the same adapter
            add_lora(refiner, self.config)
        if activation_checkpointing:
            enable_activation_checkpointing(refiner.transformer)
        shard_refiner(refiner.transformer, env)  # after the adapter exists, before the optimizer sees it
        self.params = lora_parameters(refiner.transformer)
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)
        self.generator = torch.Generator(device=refiner.transformer.device).manual_seed(seed)
        self.step = 0

    def train_step(self, batch: RefinerTrainBatch) -> float:
        transformer = self.refiner.transformer
        transformer.train()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            loss = truncated_sigma_loss(
                self.refiner, batch, self.config, generator=self.generator, backward=True
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"refiner LoRA loss is {loss.item()} at step {self.step}; lower the learning rate or "
                    "check the latents for NaN/inf"
                )
            self.optimizer.step()
        finally:
            transformer.eval()
        self.step += 1
        return float(loss)

    def save(self, folder: str | Path) -> Path:
        """Write the LoRA checkpoint to `folder` (replaced atomically if it exists); return it. Under
        FSDP2 every rank calls it (the weights and optimizer state are gathered); rank 0 writes."""
        folder = Path(folder)
        weights = lora_state_dict(self.refiner.transformer)
        optimizer = full_optimizer_state(self.refiner.transformer, self.optimizer)
        if self.env is not None and not self.env.is_main:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_file(weights, tmp / WEIGHTS, metadata={"step": str(self.step)})
        (tmp / LORA_CONFIG).write_text(json.dumps({**self.config.to_dict(), "step": self.step}, indent=2))
        torch.save(
            {"optimizer": optimizer, "generator": self.generator.get_state()},
            tmp / OPTIMIZER,
        )
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        old = None
        if folder.exists():
            old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old)
        return folder

    @classmethod
    def resume(
        cls,
        refiner: LTX2Refiner,
        folder: str | Path,
        *,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        env: DistEnv | None = None,
        activation_checkpointing: bool = False,
    ) -> RefinerLoRATrainer:
        """A trainer on a fresh base `refiner` continuing the run saved in `folder` (learning rate and
        optimizer moments come from the checkpoint)."""
        folder = Path(folder)
        config = _read_config(folder)
        trainer = cls(
            refiner,
            config,
            lr=lr,
            weight_decay=weight_decay,
            env=env,
            activation_checkpointing=activation_checkpointing,
        )
        _load_adapter_weights(refiner.transformer, load_file(folder / WEIGHTS), folder)
        extra = torch.load(folder / OPTIMIZER, map_location="cpu", weights_only=False)
        load_optimizer_state(refiner.transformer, trainer.optimizer, extra["optimizer"])
        trainer.generator.set_state(extra["generator"])
        trainer.step = int(json.loads((folder / LORA_CONFIG).read_text())["step"])
        return trainer


# ---- internals -------------------------------------------------------------------------------------


def _read_config(folder: Path) -> RefinerLoRAConfig:
    if not (folder / LORA_CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(
            f"{folder} is not a refiner LoRA checkpoint (needs {WEIGHTS} and {LORA_CONFIG}); write one "
            "with RefinerLoRATrainer.save(folder)"
        )
    d = json.loads((folder / LORA_CONFIG).read_text())
    d.pop("step", None)
    return RefinerLoRAConfig.from_dict(d)


def _load_adapter_weights(
    transformer: torch.nn.Module, weights: dict[str, torch.Tensor], folder: Path
) -> None:
    params = dict(transformer.named_parameters())
    own = {n for n in params if "lora_" in n}
    if set(weights) != own:
        missing, extra = sorted(own - set(weights)), sorted(set(weights) - own)
        raise ValueError(
            f"LoRA checkpoint {folder} does not fit this refiner: missing {missing[:3]}, unexpected "
            f"{extra[:3]}; was it trained on a refiner of another architecture?"
        )
    with torch.no_grad():
        for name, value in weights.items():
            if params[name].shape != value.shape:
                raise ValueError(
                    f"LoRA checkpoint {folder}: {name} has shape {tuple(value.shape)}, the refiner expects "
                    f"{tuple(params[name].shape)}; was it trained on a refiner of another size?"
                )
            params[name].copy_(shard_like(value, params[name]))


def _check_batch(refiner: LTX2Refiner, batch: RefinerTrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
    stage1, target = batch.stage1, batch.target
    if stage1.shape != target.shape:
        raise ValueError(
            f"stage-1 latents {tuple(stage1.shape)} and target latents {tuple(target.shape)} must have the "
            "same shape: they are two versions of the same frames"
        )
    refiner._check_latents(stage1)
    sink = refiner.schedule.sink_size
    if stage1.shape[2] <= sink:
        raise ValueError(
            f"training clips need more than the refiner's {sink} sink frame(s); got {stage1.shape[2]} frames"
        )
    if not (torch.isfinite(stage1).all() and torch.isfinite(target).all()):
        raise ValueError("stage-1 or target latents contain NaN or inf")
    return stage1, target


__all__ = [
    "DEFAULT_TARGETS",
    "RefinerLoRAConfig",
    "RefinerLoRATrainer",
    "RefinerTrainBatch",
    "add_lora",
    "enable_activation_checkpointing",
    "load_lora",
    "lora_parameters",
    "lora_state_dict",
    "shard_refiner",
    "truncated_sigma_loss",
]
