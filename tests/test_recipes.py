"""The default model's recipe end to end at toy scale (`recipes/default_model.sh --smoke`): procedural
worlds -> VAE -> latent caches -> the three world-model phases -> export, as the GPU machine runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sanawm.pipelines.world_model import DEFAULT_MODEL, WorldModelPipeline

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the recipes are bash scripts")


def test_default_model_recipe_smoke_with_phase_3(tmp_path):
    work = tmp_path / "work"
    env = {**os.environ, "P3_MINUTES": "1", "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        ["bash", str(ROOT / "recipes/default_model.sh"), str(work), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    log = (work / "recipe.log").read_text()
    for stage in ("phase 1", "phase 2", "phase 3: 9 latent frames", "exported"):
        assert stage in log, log
    steps = [json.loads(line)["step"] for line in (work / "phase3/metrics.jsonl").read_text().splitlines()]
    assert steps and max(steps) >= 1
    # The pipeline ships phase 3's EMA (the last phase), not phase 2's.
    exported = load_file(work / "pipeline/transformer/diffusion_pytorch_model.safetensors")
    last = {run: load_file(sorted((work / run / "checkpoints").glob("step_*"))[-1] / "ema.safetensors")
            for run in ("phase2", "phase3")}  # fmt: skip
    shared = [k for k in exported if k in last["phase3"] and exported[k].is_floating_point()]
    assert shared
    for run, same in (("phase3", True), ("phase2", False)):
        diffs = [
            (exported[k].float() - last[run][k].to(exported[k].dtype).float()).abs().max() for k in shared
        ]
        assert (max(diffs).item() == 0.0) is same, run
    pipe = WorldModelPipeline.from_pretrained(work / "pipeline")
    vae_channels = json.loads((work / "vae/vae/config.json").read_text())["latent_channels"]
    assert pipe.transformer.cfg.in_channels == vae_channels


def test_refiner_recipe_smoke_and_a_variant_on_its_data(tmp_path):
    """`refiner_default.sh --smoke`: clips, latents, stage-1 pairs, training with the settings passed
    (REF_CONTEXT), export and the refined evaluation; then a variant trained on the same data (REF_DATA)
    renders and rolls out nothing; a REF_DATA without this recipe's data is refused."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT), "REF_CONTEXT": "0.5"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the recipes call python3

    def recipe(work, **extra):
        return subprocess.run(
            ["bash", str(ROOT / "recipes/refiner_default.sh"), str(work), "--smoke"],
            cwd=ROOT, env={**env, **extra}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    first, second = tmp_path / "a", tmp_path / "b"
    run = recipe(first)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert yaml.safe_load((first / "refiner/config.yaml").read_text())["refiner"]["stage1_context"] == 0.5
    assert (first / "pipeline/refiner/transformer/config.json").is_file()
    assert "refined" in json.loads((first / "eval60_refine.json").read_text())["horizons"]
    run = recipe(second, REF_DATA=str(first), REF_UNIFORM="0.5")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for d in ("worlds", "latents", "pairs"):
        assert (second / d).is_symlink() and (second / d).resolve() == (first / d).resolve()
    assert not (second / "pairs.json").exists() and not (second / "worlds.render.json").exists()
    cfg = yaml.safe_load((second / "refiner/config.yaml").read_text())["refiner"]
    assert (cfg["target_uniform"], cfg["stage1_context"]) == (0.5, 0.5)
    run = recipe(tmp_path / "c", REF_DATA=str(tmp_path / "nothing"))
    assert run.returncode == 2 and "holds no finished pairs/" in run.stderr


def _refusal(tmp_path, **settings) -> str:
    """The recipe's stderr when it exits 2 before any work, with NPROC=2 and `settings` (no phase 3 unless
    P3_MINUTES is given)."""
    env = {k: v for k, v in os.environ.items() if k != "P3_MINUTES"}
    env.update(NPROC="2", PYTHONPATH=str(ROOT), **settings)
    run = subprocess.run(
        ["bash", str(ROOT / "recipes/default_model.sh"), str(tmp_path / "w")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert not any((tmp_path / "w").iterdir())  # refused before any work
    return run.stderr


def test_default_model_recipe_refuses_a_batch_that_does_not_split(tmp_path):
    stderr = _refusal(tmp_path, P2_BATCH="7")
    assert "P2_BATCH=7" in stderr and "multiple of 2" in stderr
    assert "P3_BATCH=9" in _refusal(tmp_path, P3_BATCH="9", P3_MINUTES="1")


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="with 2 GPUs the recipe would start training")
def test_default_model_recipe_ignores_phase_3_batch_without_phase_3(tmp_path):
    """P3_BATCH is checked only when phase 3 runs: here the next check (the GPUs) is what refuses."""
    stderr = _refusal(tmp_path, P3_BATCH="9")
    assert "P3_BATCH" not in stderr and "GPU" in stderr


def _continue_and_refine(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "recipes/continue_and_refine.sh"), str(tmp_path / "w"), *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_continue_and_refine_refuses_a_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "empty").mkdir()
    run = _continue_and_refine(tmp_path, str(tmp_path / "empty"), str(DEFAULT_MODEL))
    assert run.returncode == 2 and "not a pipeline folder" in run.stderr and "empty" in run.stderr
    assert not (tmp_path / "w").exists()  # refused before any work
    run = _continue_and_refine(tmp_path, str(DEFAULT_MODEL), str(DEFAULT_MODEL), "--smok")
    assert run.returncode == 2 and "unknown argument --smok" in run.stderr


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="with 2 GPUs the recipe would start training")
def test_continue_and_refine_needs_two_gpus(tmp_path):
    run = _continue_and_refine(tmp_path, str(DEFAULT_MODEL), str(DEFAULT_MODEL))
    assert run.returncode == 2 and "two or more GPUs" in run.stderr
    assert not (tmp_path / "w").exists()


def test_distill_sweep_smoke_prepares_once_and_summarises(tmp_path):
    """Two students of the shipped model from one shared preparation (clips, caches, trajectories built by
    whichever starts first, under a lock), then both and teacher4 evaluated and summarised."""
    work = tmp_path / "w"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        ["bash", str(ROOT / "recipes/distill_sweep.sh"), str(work), "--smoke", "3e-4", "1e-3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    data = work / "data"
    assert (data / "trajectories.done").is_file() and not (work / "lr-3e-4" / "worlds").exists()
    for lr in ("3e-4", "1e-3"):
        ode = yaml.safe_load((work / f"lr-{lr}" / "ode" / "config.yaml").read_text())
        assert ode["ode"]["dataset"] == str(data / "trajectories") and ode["optim"]["lr"] == float(lr)
        assert (work / f"lr-{lr}" / "pipeline" / "student" / "transformer").is_dir()
    rows = (work / "summary.md").read_text().splitlines()
    rows = [r for r in rows if r.startswith("| lr-") or r.startswith("| teacher4")]
    assert [r.split("|")[1].strip() for r in rows] == ["lr-3e-4", "lr-1e-3", "teacher4"]
    assert all("missing" not in r for r in rows)


def test_distill_sweep_refuses_bad_arguments(tmp_path):
    def sweep(*args):
        return subprocess.run(
            ["bash", str(ROOT / "recipes/distill_sweep.sh"), str(tmp_path / "w"), *args],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    run = sweep("--smoke")
    assert run.returncode == 2 and "no ODE learning rate" in run.stderr
    run = sweep("--smoke", "fast")
    assert run.returncode == 2 and "fast is not a learning rate" in run.stderr
    run = sweep("--smoke", "--teacher", str(tmp_path), "1e-4")
    assert run.returncode == 2 and "not a pipeline folder" in run.stderr
    assert not (tmp_path / "w").exists()


def test_carry_parts_survive_calls_that_each_carry_one(tmp_path):
    """`carry_parts.sh`: the split parts reach the GPU machine one call at a time, and each call's tree lacks
    the parts of earlier calls; check stashes each, join unpacks the whole (checksummed); parts of an older
    split leave the stash."""
    here, there, stash = tmp_path / "here", tmp_path / "there", tmp_path / "stash"
    (here / "payload").mkdir(parents=True)
    (here / "payload" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    script = str(ROOT / "recipes/carry_parts.sh")
    env = {**os.environ, "CARRY_STASH": str(stash)}

    def sh(cwd, *args):
        return subprocess.run(["bash", script, *args], cwd=cwd, env=env, capture_output=True, text=True)

    def a_call_carrying(part):  # the machine's tree holds this call's part only
        shutil.rmtree(there, ignore_errors=True)
        there.mkdir()
        shutil.copytree(here / part, there / part)

    assert sh(here, "split", "1", "payload").returncode == 0
    parts = sorted(p.name for p in here.glob(".carry*"))
    assert len(parts) == 4
    for i, part in enumerate(parts[:-1]):
        a_call_carrying(part)
        run = sh(there, "check")
        assert run.returncode == 0 and f"{i + 1} of 4 parts present" in run.stdout
    a_call_carrying(parts[-1])
    run = sh(there, "join", "unpacked")
    assert run.returncode == 0, run.stderr
    assert (there / "unpacked/payload/blob.bin").read_bytes() == (here / "payload/blob.bin").read_bytes()

    (here / "payload" / "blob.bin").write_bytes(os.urandom(1024))  # a new split: the stash starts over
    assert sh(here, "split", "1", "payload").returncode == 0
    a_call_carrying(".carry1")
    run = sh(there, "join", "again")
    assert run.returncode == 0 and "1 of 1 parts present" in run.stdout
    assert (there / "again/payload/blob.bin").read_bytes() == (here / "payload/blob.bin").read_bytes()


def test_device_watch_brings_back_a_refiner_run(tmp_path):
    """`device_watch.sh` packs what the caller lacks: of a refiner run's export (the refined pipeline's
    copy plus refiner/), refiner/ and the training metrics, not the copied student/ or transformer/; of a
    distillation, student/."""
    work, out = tmp_path / "work", tmp_path / "out"
    for d in (
        "pipeline/transformer",
        "pipeline/student/transformer",
        "pipeline/refiner/transformer",
        "refiner",
    ):
        (work / d).mkdir(parents=True)
    (work / "pipeline/generation.json").write_text("{}")  # the refiner recipe's last output: the watch ends
    (work / "pipeline/refiner/transformer/weights.bin").write_bytes(b"r")
    (work / "pipeline/student/transformer/weights.bin").write_bytes(b"s")
    (work / "refiner/metrics.jsonl").write_text('{"step": 25, "loss": 0.5}\n')
    (work / "train.json").write_text("{}")
    out.mkdir()

    def packed():
        for f in out.glob("pack.tar.part-*"):
            f.unlink()
        cmd = [
            "bash",
            "recipes/device_watch.sh",
            str(work),
            str(out),
            "0",
            "--recipe",
            "recipes/refiner_default.sh",
        ]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        tar = b"".join(p.read_bytes() for p in sorted(out.glob("pack.tar.part-*")))
        (tmp_path / "pack.tar").write_bytes(tar)
        listing = subprocess.run(["tar", "tf", str(tmp_path / "pack.tar")], capture_output=True, text=True)
        return set(listing.stdout.split())

    got = packed()
    assert {"pipeline/refiner/transformer/weights.bin", "refiner/metrics.jsonl", "train.json"} <= got
    assert not any(p.startswith(("pipeline/student", "pipeline/transformer")) for p in got)
    shutil.rmtree(work / "pipeline/refiner")  # a distillation's export: student/ comes back
    got = packed()
    assert "pipeline/student/transformer/weights.bin" in got
    assert not any(p.startswith("pipeline/transformer") for p in got)
