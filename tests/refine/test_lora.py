"""LoRA fine-tuning of the LTX-2 refiner on tiny random components (issue 11, acceptance 4): one
training step on CPU, the truncated-σ objective against a hand computation through the inference path,
an exact resume from a checkpoint and the reloaded adapter at inference."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from sanawm.refine import LTX2PromptEncoder, LTX2Refiner, RefinerPrompt, RefinerSchedule  # noqa: E402
from sanawm.refine.lora import (  # noqa: E402
    RefinerLoRAConfig,
    RefinerLoRATrainer,
    RefinerTrainBatch,
    add_lora,
    load_lora,
    truncated_sigma_loss,
)
from sanawm.training.distributed import DistEnv  # noqa: E402

from .tiny import CHANNELS, TEXT_LENGTH, tiny_refiner_pipeline  # noqa: E402

FPS = 24.0
CONFIG = RefinerLoRAConfig(rank=4)


@pytest.fixture(scope="module")
def parts() -> tuple[torch.nn.Module, RefinerPrompt]:
    pipe = tiny_refiner_pipeline()
    encoder = LTX2PromptEncoder(
        pipe.tokenizer, pipe.text_encoder, pipe.connectors, max_sequence_length=TEXT_LENGTH
    )
    return pipe.transformer, encoder.encode("a red car at night")


def fresh(parts) -> LTX2Refiner:
    return LTX2Refiner(copy.deepcopy(parts[0]))


def batch(parts, frames: int = 8, seed: int = 1) -> RefinerTrainBatch:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(1, CHANNELS, frames, 4, 6, generator=g)
    stage1 = target + 0.3 * torch.randn(target.shape, generator=g)  # a drifted copy of the same frames
    return RefinerTrainBatch(stage1=stage1, target=target, prompt=parts[1], fps=FPS)


def test_one_step_trains_only_the_adapter(parts) -> None:
    refiner = fresh(parts)
    base = {k: v.clone() for k, v in refiner.transformer.state_dict().items()}
    trainer = RefinerLoRATrainer(refiner, CONFIG, lr=1e-2)
    trainable = {n for n, p in refiner.transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("audio" in n for n in trainable)  # the default targets skip the unused audio branch
    lora_b = {n: p.clone() for n, p in refiner.transformer.named_parameters() if "lora_B" in n}
    assert all(torch.equal(v, torch.zeros_like(v)) for v in lora_b.values())  # starts as identity

    loss = trainer.train_step(batch(parts))  # 8 frames: sink + 2 full blocks + a 1-frame block
    assert torch.isfinite(torch.tensor(loss)) and loss > 0
    after = {
        k.replace(".base_layer", ""): v
        for k, v in refiner.transformer.state_dict().items()
        if "lora_" not in k
    }
    assert after.keys() == base.keys()
    assert all(torch.equal(after[k], v) for k, v in base.items())  # base weights untouched
    moved = [
        n
        for n, p in refiner.transformer.named_parameters()
        if "lora_B" in n and not torch.equal(p, lora_b[n])
    ]
    assert len(moved) == len(lora_b)


def test_activation_checkpointing_changes_nothing(parts) -> None:
    plain = RefinerLoRATrainer(fresh(parts), CONFIG, lr=1e-2, seed=2)
    ckpt = RefinerLoRATrainer(fresh(parts), CONFIG, lr=1e-2, seed=2, activation_checkpointing=True)
    calls = {"plain": 0, "ckpt": 0}
    for name, trainer in (("plain", plain), ("ckpt", ckpt)):
        trainer.refiner.transformer.transformer_blocks[0].norm1.register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    for seed in (1, 2):
        assert ckpt.train_step(batch(parts, seed=seed)) == plain.train_step(batch(parts, seed=seed))
    # 8 frames = 3 blocks: each block's training forward is recomputed in backward, the σ = 0 K/V passes
    # (no grad) are not.
    assert calls["ckpt"] == calls["plain"] + 2 * 3
    expected = dict(plain.refiner.transformer.named_parameters())
    for n, p in ckpt.refiner.transformer.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=0, atol=1e-6, msg=n)


def test_fresh_adapter_leaves_refinement_unchanged(parts) -> None:
    z = batch(parts).stage1
    expected = fresh(parts).refine(z, parts[1], fps=FPS, generator=torch.Generator().manual_seed(5))
    refiner = fresh(parts)
    add_lora(refiner, CONFIG)
    got = refiner.refine(z, parts[1], fps=FPS, generator=torch.Generator().manual_seed(5))
    assert torch.equal(got, expected)


def test_loss_is_the_truncated_sigma_objective(parts) -> None:
    # Sink + one 3-frame block. By hand: the refiner's own inference path with the one-step schedule
    # (σ_s, 0) gives x_out = x_σs - σ_s·v, so v = (x_σs - x_out)/σ_s, with ε drawn from the same seed.
    b = batch(parts, frames=4)
    sigma_s = CONFIG.sigma
    loss = truncated_sigma_loss(fresh(parts), b, CONFIG, generator=torch.Generator().manual_seed(9))

    one_step = LTX2Refiner(copy.deepcopy(parts[0]), schedule=RefinerSchedule(sigmas=(sigma_s, 0.0)))
    refined = one_step.refine(b.stage1, parts[1], fps=FPS, generator=torch.Generator().manual_seed(9))
    eps = torch.randn(b.stage1[:, :, 1:].shape, generator=torch.Generator().manual_seed(9))
    x_s = (1 - sigma_s) * b.stage1[:, :, 1:] + sigma_s * eps
    velocity = (x_s - refined[:, :, 1:]) / sigma_s
    v_star = (x_s - b.target[:, :, 1:]) / sigma_s
    expected = ((velocity - v_star) ** 2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_resume_reproduces_the_next_step_and_the_adapter_reloads(parts, tmp_path) -> None:
    config = RefinerLoRAConfig(rank=4, alpha=8, sample_sigma=True)
    trainer = RefinerLoRATrainer(fresh(parts), config, lr=1e-2, seed=3)
    trainer.train_step(batch(parts, seed=1))
    folder = trainer.save(tmp_path / "lora")
    assert trainer.save(tmp_path / "lora") == folder  # re-saving replaces the folder
    expected_loss = trainer.train_step(batch(parts, seed=2))
    expected_weights = {
        n: p.clone() for n, p in trainer.refiner.transformer.named_parameters() if "lora_" in n
    }

    resumed = RefinerLoRATrainer.resume(fresh(parts), folder)
    assert resumed.step == 1 and resumed.config == config
    assert resumed.train_step(batch(parts, seed=2)) == expected_loss
    for n, p in resumed.refiner.transformer.named_parameters():
        if "lora_" in n:
            assert torch.equal(p, expected_weights[n]), n

    # Inference with the saved adapter: attached it is bit-identical to the trainer's refiner at save
    # time, merged it agrees to rounding, and it differs from the base refiner.
    at_save = RefinerLoRATrainer.resume(fresh(parts), folder).refiner
    z = batch(parts, seed=4).stage1

    def run(r: LTX2Refiner) -> torch.Tensor:
        return r.refine(z, parts[1], fps=FPS, generator=torch.Generator().manual_seed(6))

    expected = run(at_save)
    assert torch.equal(run(load_lora(fresh(parts), folder, merge=False)), expected)
    torch.testing.assert_close(
        run(load_lora(fresh(parts), folder, merge=True)), expected, rtol=1e-5, atol=1e-5
    )
    assert not torch.allclose(run(fresh(parts)), expected, atol=1e-4)


def test_clear_errors(parts, tmp_path) -> None:
    with pytest.raises(ValueError, match="rank"):
        RefinerLoRAConfig(rank=0)
    with pytest.raises(ValueError, match="σ_s"):
        RefinerLoRAConfig(sigma=0.0)
    b = batch(parts)
    refiner = fresh(parts)
    with pytest.raises(ValueError, match="same shape"):
        truncated_sigma_loss(refiner, RefinerTrainBatch(b.stage1, b.target[:, :, :5], b.prompt, FPS), CONFIG)
    with pytest.raises(ValueError, match="sink"):
        truncated_sigma_loss(
            refiner, RefinerTrainBatch(b.stage1[:, :, :1], b.target[:, :, :1], b.prompt, FPS), CONFIG
        )
    with pytest.raises(ValueError, match="channels"):
        truncated_sigma_loss(
            refiner, RefinerTrainBatch(b.stage1[:, :4], b.target[:, :4], b.prompt, FPS), CONFIG
        )
    with pytest.raises(ValueError, match="match no"):
        add_lora(fresh(parts), RefinerLoRAConfig(rank=4, target_modules=r".*no_such_layer"))
    with pytest.raises(FileNotFoundError, match="not a refiner LoRA checkpoint"):
        load_lora(fresh(parts), tmp_path)
    add_lora(refiner, CONFIG)
    with pytest.raises(ValueError, match="already carries"):
        add_lora(refiner, CONFIG)


def train_tiny(env: DistEnv | None = None) -> tuple[RefinerLoRATrainer, list[float]]:
    """Two LoRA steps on the tiny refiner (also run by each rank of `lora_fsdp_rank`)."""
    pipe = tiny_refiner_pipeline()
    encoder = LTX2PromptEncoder(
        pipe.tokenizer, pipe.text_encoder, pipe.connectors, max_sequence_length=TEXT_LENGTH
    )
    b = batch((pipe.transformer, encoder.encode("a red car at night")), frames=7)
    trainer = RefinerLoRATrainer(LTX2Refiner(pipe.transformer), CONFIG, lr=1e-2, env=env)
    return trainer, [trainer.train_step(b) for _ in range(2)]


def test_fsdp2_two_cpu_ranks_match_one_process(tmp_path) -> None:
    # FSDP2 (gloo, 2 CPU ranks, blocks sharded by shard_refiner) on the same batch on both ranks: the
    # averaged gradients equal one process's, so losses and the gathered adapter match exactly.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    ranks = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", PYTHONPATH=str(root))
        cmd = [sys.executable, "-m", "tests.refine.lora_fsdp_rank", str(tmp_path / "fsdp")]
        ranks.append(
            subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    trainer, losses = train_tiny()
    single = trainer.save(tmp_path / "single")
    outputs = [p.communicate(timeout=300)[0] for p in ranks]
    for p, output in zip(ranks, outputs, strict=True):
        assert p.returncode == 0, output[-4000:]
        assert f"losses {losses}" in output
    from safetensors.torch import load_file

    sharded, whole = (
        load_file(tmp_path / "fsdp" / "adapter.safetensors"),
        load_file(single / "adapter.safetensors"),
    )
    assert sharded.keys() == whole.keys()
    assert all(torch.equal(sharded[k], whole[k]) for k in whole)
