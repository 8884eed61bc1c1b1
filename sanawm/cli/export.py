"""`sanawm export RUN --vae VAE --out DIR`: a training run -> a pipeline folder for `sanawm generate`."""

from __future__ import annotations

from .arguments import add_output_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a pipeline folder (transformer/, vae/, scheduler/, generation.json) from a training run",
        description="Write a pipeline folder that `sanawm generate --model` and WorldModelPipeline load: "
        "the run's weights, its VAE, a flow-matching scheduler with the training shift and generation "
        "defaults taken from the training config.",
    )
    p.add_argument("checkpoint", help="a training run folder (its latest checkpoint) or a checkpoint folder")
    p.add_argument("--vae", required=True, help="the VAE folder the run's latents came from")
    add_output_arguments(p)
    p.add_argument("--steps", type=int, default=8, help="default sampling steps")
    p.add_argument("--guidance", type=float, default=1.0, help="default classifier-free guidance")
    p.add_argument(
        "--int8",
        action="store_true",
        help="store the transformer's large weights and our VAE's convolutions in int8 (about half of "
        "bf16; sanawm loads them, diffusers does not)",
    )
    p.set_defaults(run=run)


def run(args) -> dict:
    from ..pipelines.export import export_pipeline, folder_megabytes, weights_report

    out = export_pipeline(
        args.checkpoint,
        args.vae,
        args.out,
        weights=args.weights,
        dtype=args.dtype,
        steps=args.steps,
        guidance=args.guidance,
        overwrite=args.overwrite,
        int8=args.int8,
    )
    return {"out": str(out), "megabytes": folder_megabytes(out), "weights": weights_report(out)}
