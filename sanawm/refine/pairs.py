"""Training pairs for the small refiner: stage-1 rollouts of the pipeline next to the ground truth.

For clip k of a latent cache (`sanawm cache-latents`: GT latents, camera and Plücker inputs, text), the
pipeline's own streaming sampler and defaults (its generation.json, context noise included; the
distilled student when the folder has one, unless `teacher=True`) roll out stage 1 from the GT first
latent frame along the clip's cameras, with seed `derive_seed(seed, k, 21)`. A shard
(`shard_00000.safetensors`, ...) holds per clip

    {k}.stage1 (C, T, h, w)   {k}.latents (C, T, h, w) (GT)   {k}.camera (T, 20)   {k}.plucker (48, T, h, w)
    {k}.text (L, D)           {k}.text_mask (L,)

and is written atomically, so an interrupted build resumes by skipping finished shards; index.json is
written last (a folder without it is unfinished). Clips are rolled out `batch_size` at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..training.cache import ShardedSamples, check_resume, condition_batch, write_shards
from ..training.data import derive_seed

INDEX = "index.json"
FORMAT = "sanawm-refiner-pairs"
FIELDS = ("stage1", "latents", "camera", "plucker", "text", "text_mask")


def clip_seed(seed: int, k: int) -> int:
    """The stage-1 seed of clip k (`GenerationConfig.seed`), below 2**62 so seed + 2 stays a valid seed."""
    return derive_seed(seed, k, 21) >> 1


@torch.no_grad()
def build_pairs(
    out_dir,
    pipe,
    dataset: Dataset,
    *,
    samples: int,
    latent_frames: int,
    seed: int,
    settings: dict,
    shard_size: int = 16,
    batch_size: int = 8,
    progress=None,
) -> Path:
    """Write (or finish) the pair folder from `pipe` (a `WorldModelPipeline`) and `dataset` items
    (latents (C, T', h, w), T' >= latent_frames; camera; plucker; text; text_mask); returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = pipe.generation_config(mode="streaming", num_frames=8 * (latent_frames - 1) + 1)
    config = {
        "format": FORMAT,
        **settings,
        "samples": samples,
        "latent_frames": latent_frames,
        "seed": seed,
        "shard_size": shard_size,
        "sampler": {
            "timesteps": None if cfg.timesteps is None else list(cfg.timesteps),
            "steps": cfg.steps,
            "shift": cfg.shift,
            "guidance": cfg.guidance,
            "chunk": cfg.chunk,
            "first_chunk": cfg.first_chunk,
            "kv_window": cfg.kv_window,
            "student": pipe.is_student,
            # only when set, so folders built before context noise existed still resume
            **({"context_sigma": cfg.context_sigma} if cfg.context_sigma else {}),
        },
    }
    check_resume(
        out,
        config,
        "refiner pairs",
        "choose an empty pairs folder",
        "set --pairs.dir to another folder or delete that one",
    )
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    dev, dtype = pipe.device, next(pipe.transformer.parameters()).dtype

    def fill(group: list[int]) -> dict[str, torch.Tensor]:
        batch = condition_batch(dataset, group, latent_frames, "pairs")
        stage1 = pipe.sample_conditioned(
            batch["latents"][:, :, :1],
            batch["camera"].to(dev, dtype),
            batch["plucker"].to(dev, dtype),
            batch["text"],
            batch["text_mask"],
            cfg,
            [clip_seed(seed, k) for k in group],
            latent_frames,
        )
        batch["stage1"] = stage1.float().cpu()
        return {f"{k}.{n}": batch[n][i] for i, k in enumerate(group) for n in FIELDS}

    def entry(k: int) -> dict:
        return {"seed": clip_seed(seed, k)}

    return write_shards(out, config, samples, shard_size, batch_size, fill, entry, progress)


class PairDataset(ShardedSamples):
    """A finished pair folder: item k = {stage1, latents, camera, plucker, text, text_mask}."""

    format, fields, what = FORMAT, FIELDS, "refiner pair"
    build_hint = "`sanawm refine pairs CONFIG`"


__all__ = ["FORMAT", "PairDataset", "build_pairs", "clip_seed"]
