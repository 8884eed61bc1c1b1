"""A distilled student into a pipeline folder: the teacher's folder with a `student/` beside it.

    export_student("runs/dmd", "sanawm/assets/default-model", "my-model")
    WorldModelPipeline.from_pretrained("my-model")                 # the student (4 steps, no guidance)
    WorldModelPipeline.from_pretrained("my-model", student=False)  # the teacher

Layout: everything of the teacher's pipeline folder (transformer/, vae/, scheduler/, generation.json,
text_encoder/ …) unchanged, plus

    student/transformer/     config.json + diffusion_pytorch_model.safetensors (the student, `dtype`)
    student/generation.json  the teacher's generation defaults with the student's sampler: streaming,
                             timesteps (1000, 960, 889, 727, 0), guidance 1, the chunk layout and
                             clean context (context_sigma 0, as its self-forcing rollouts had it)

With `int8=True` (`--int8`) every transformer of the written folder is stored in int8
(`sanawm.model.int8`): the student's, and the teacher's copy unless it is int8 already.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..pipelines.export import DTYPES, GENERATION_FILE, publish_folder

STUDENT = "student"


def export_student(
    run,
    pipeline,
    out,
    *,
    weights: str = "ema",
    dtype: str = "bf16",
    overwrite: bool = False,
    int8: bool = False,
) -> Path:
    """Write `out`: the teacher pipeline folder `pipeline` plus the student of the distillation run
    (or checkpoint) `run`; returns `out`. `int8`: the student's large weights in int8, and the
    teacher's copy and a small VAE too (unless they already are)."""
    from ..model.diffusers_compat import save_diffusers
    from ..model.int8 import quantize_folder
    from ..training.checkpoint import load_model, resolve_checkpoint
    from .config import load_distill_config

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    pipeline, out = Path(pipeline), Path(out)
    if not (pipeline / "transformer" / "config.json").is_file() or not (pipeline / "vae").is_dir():
        raise FileNotFoundError(
            f"{pipeline} is not a pipeline folder (transformer/, vae/, ...): pass the teacher's pipeline "
            "folder, e.g. sanawm/assets/default-model"
        )
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another folder or pass overwrite=True (--overwrite)")
    ckpt = resolve_checkpoint(run)
    cfg = load_distill_config(ckpt / "config.yaml")
    student = load_model(ckpt, weights)
    teacher_cfg = json.loads((pipeline / "transformer" / "config.json").read_text())
    if student.cfg.in_channels != teacher_cfg["in_channels"]:
        raise ValueError(
            f"the student in {ckpt} reads {student.cfg.in_channels}-channel latents but {pipeline}'s network "
            f"{teacher_cfg['in_channels']}: pass the pipeline of the run's teacher"
        )
    defaults = {}
    if (pipeline / GENERATION_FILE).is_file():
        defaults = {
            k: v for k, v in json.loads((pipeline / GENERATION_FILE).read_text()).items() if k != "_source"
        }
    timesteps = [float(t) for t in cfg.student.timesteps]
    generation = {
        **defaults,
        "mode": "streaming",
        "timesteps": timesteps,
        "steps": len(timesteps) - 1,
        "guidance": 1.0,
        "chunk": cfg.stream.chunk,
        "first_chunk": cfg.stream.first_chunk,
        "kv_window": cfg.stream.kv_window,
        "context_sigma": 0.0,  # the rollouts it was trained on commit clean context
        "_source": {"run": str(ckpt), "weights": weights, "teacher": cfg.teacher.path},
    }
    generation.setdefault("height", cfg.data.size[0])
    generation.setdefault("width", cfg.data.size[1])
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(pipeline, tmp, ignore=shutil.ignore_patterns(STUDENT))
    save_diffusers(student.to(DTYPES[dtype]), tmp / STUDENT / "transformer", int8=int8)
    if int8:  # the teacher's copy, any other transformer folder and our small VAE too
        quantize_folder(tmp, skip_int8=True)
    (tmp / STUDENT / GENERATION_FILE).write_text(json.dumps(generation, indent=2) + "\n")
    return publish_folder(tmp, out)


__all__ = ["STUDENT", "export_student"]
