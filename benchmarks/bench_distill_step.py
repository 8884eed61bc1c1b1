"""One training step of each distillation stage: time and peak memory (the device check of the
sana-wm-2.6b path). Conditions are synthetic; nothing but a tiny trajectory folder is written (no
checkpoints). The teacher is a pipeline / transformer folder, or random weights of a model preset
(`random:PRESET`, as benchmarks/bench_streaming.py draws them, written once as a bf16 diffusers folder
under --work).

    python benchmarks/bench_distill_step.py --teacher random:sana-wm-2.6b --work /tmp/w \\
        --frames 11 --size 352,640 --out distill_step_2p6b.json
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch

from sanawm.distill import DmdDistiller, OdeDistiller, load_distill_config
from sanawm.training.data import build_loader


def teacher_folder(spec: str, work: Path) -> str:
    if not spec.startswith("random:"):
        return spec
    from bench_streaming import build  # every weight random (zero-initialised branches live)

    from sanawm.model import save_diffusers

    folder = work / f"teacher-{spec[7:]}"
    if not (folder / "config.json").is_file():
        save_diffusers(build(spec[7:], "cpu", torch.bfloat16), folder)
    return str(folder)


def one_step(stage: str, config: str, overrides: list[str]) -> dict:
    cfg = load_distill_config(config, overrides)
    run = (OdeDistiller if stage == "ode" else DmdDistiller)(cfg)
    loader = build_loader(run.dataset(), cfg.data, run.model_config, cfg.run.seed, 0, 0, 1)
    batch = next(iter(loader))
    cuda = run.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    weights_gb = torch.cuda.memory_allocated() / 2**30 if cuda else None
    t0 = time.perf_counter()
    out = run.train_step(batch)
    if cuda:
        torch.cuda.synchronize()
    row = {"stage": stage, "seconds": time.perf_counter() - t0, **out}
    if cuda:
        row.update(weights_gb=weights_gb, max_mem_gb=torch.cuda.max_memory_allocated() / 2**30)
        row["device"] = torch.cuda.get_device_name()
    row["parameters"] = sum(p.numel() for p in run.student.parameters())
    del run, loader, batch
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a pipeline / transformer folder, or random:PRESET")
    p.add_argument("--work", required=True, help="scratch folder (random teacher, trajectory folder)")
    p.add_argument("--frames", type=int, default=11, help="latent frames of the clips")
    p.add_argument("--size", default="352,640", help="H,W pixels")
    p.add_argument("--text-tokens", type=int, default=300)
    p.add_argument("--stages", nargs="+", choices=("ode", "dmd"), default=["ode", "dmd"])
    p.add_argument("--ode-config", default="distill-ode-2.6b")
    p.add_argument("--dmd-config", default="distill-dmd-2.6b")
    p.add_argument(
        "--set", action="append", default=[], help="one more override each, e.g. --set=--run.device=cpu"
    )
    p.add_argument("--out", help="JSON results")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    F = args.frames
    common = [
        f"--teacher.path={teacher_folder(args.teacher, work)}",
        "--data.source=synthetic",
        f"--data.latent_frames={F}",
        f"--data.size={args.size}",
        f"--data.text_tokens={args.text_tokens}",
        "--data.batch_size=1",
        "--data.workers=0",
        "--run.progress=false",
        *args.set,
    ]
    rows = []
    for stage in args.stages:
        extra = [f"--run.out_dir={work / stage}"]
        if stage == "ode":
            extra += [f"--ode.dataset={work / 'trajectories'}", "--ode.samples=1", "--ode.batch_size=1"]
            extra += ["--teacher.steps=2"]  # the trajectory is not what is measured
        else:
            extra += [f"--dmd.curriculum=[[0,{F}]]", "--dmd.critic_steps=1"]  # student and critic update
        rows.append(one_step(stage, args.ode_config if stage == "ode" else args.dmd_config, common + extra))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
