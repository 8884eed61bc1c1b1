"""`sanawm distill ode|dmd CONFIG [--section.key=value ...] [--resume]`, `sanawm distill trajectories CONFIG`
(the ODE stage's teacher trajectories only) and `sanawm distill export`:
a few-step autoregressive student from a multi-step teacher (README, Distillation)."""

from __future__ import annotations

from .arguments import add_config_arguments, add_output_arguments, overrides_and_resume


def add_parser(sub) -> None:
    from ..distill.config import list_distill_presets

    p = sub.add_parser(
        "distill",
        help="distil a 4-step autoregressive student from a multi-step teacher (ODE regression, then DMD)",
        description="Distillation in two stages, then export. `ode`: the teacher's sampling trajectories "
        "into a dataset (resumable), then regression of the student onto them. `dmd`: self-forcing "
        "rollouts of the student with distribution matching against the teacher and a fake score. "
        "`export`: a pipeline folder whose student/ `sanawm generate` uses by default.",
    )
    stages = p.add_subparsers(dest="stage", required=True)
    presets = ", ".join(list_distill_presets())
    for stage, text in (("ode", "stage 1: ODE regression"), ("dmd", "stage 2: self-forcing with DMD")):
        s = stages.add_parser(
            stage,
            help=text,
            description=f"{text}. Writes config.yaml, metrics.jsonl and checkpoints/ under run.out_dir.",
        )
        add_config_arguments(s, presets)
        s.set_defaults(run=run_stage)
    t = stages.add_parser(
        "trajectories",
        help="build the ODE stage's teacher trajectories only (no training)",
        description="Build (or finish) the teacher trajectory folder of an ODE config (ode.dataset, default "
        "RUN/trajectories) and stop. Runs of other learning rates or lengths with the same teacher, data, "
        "seed and student timesteps accept the folder as theirs (--ode.dataset=...), so one build serves "
        "several students.",
    )
    add_config_arguments(t, presets)
    t.set_defaults(run=run_trajectories)
    e = stages.add_parser(
        "export",
        help="write a pipeline folder: the teacher's plus the student in student/",
        description="Copy the teacher's pipeline folder and add the run's student as student/ "
        "(transformer/ and generation.json with the few-step sampler); `sanawm generate --model OUT` then "
        "uses the student (`--teacher` the multi-step model).",
    )
    e.add_argument(
        "run_dir",
        metavar="RUN",
        help="a distillation run folder (its latest checkpoint) or a checkpoint",
    )
    e.add_argument("--pipeline", required=True, help="the teacher's pipeline folder (vae/, scheduler/, ...)")
    add_output_arguments(e)
    e.add_argument(
        "--int8",
        action="store_true",
        help="store every transformer of --out in int8 (the student's, and the teacher's copy unless it "
        "already is) and our small VAE's convolutions: about half of bf16; sanawm loads them, diffusers "
        "does not",
    )
    e.set_defaults(run=run_export)


def run_trajectories(args) -> dict:
    from pathlib import Path

    from ..distill.config import load_distill_config
    from ..distill.trainer import OdeDistiller
    from ..training.checkpoint import latest_checkpoint

    overrides, _ = overrides_and_resume(args)
    cfg = load_distill_config(args.config, overrides)
    # building trajectories never trains: a run folder with checkpoints is fine
    resume = latest_checkpoint(Path(cfg.run.out_dir) / "checkpoints") is not None
    folder = OdeDistiller(cfg, resume=resume).build()
    return {"trajectories": str(folder), "samples": cfg.ode.samples}


def run_stage(args) -> dict:
    from ..distill.config import load_distill_config
    from ..distill.trainer import DmdDistiller, OdeDistiller

    overrides, resume = overrides_and_resume(args)
    cfg = load_distill_config(args.config, overrides)
    return (OdeDistiller if args.stage == "ode" else DmdDistiller)(cfg, resume=resume).train()


def run_export(args) -> dict:
    from ..distill.export import export_student
    from ..pipelines.export import folder_megabytes, weights_report

    out = export_student(
        args.run_dir,
        args.pipeline,
        args.out,
        weights=args.weights,
        dtype=args.dtype,
        overwrite=args.overwrite,
        int8=args.int8,
    )
    return {
        "out": str(out),
        "student_megabytes": folder_megabytes(out / "student"),
        "megabytes": folder_megabytes(out),
        "weights": weights_report(out),
    }
