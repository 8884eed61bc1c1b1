"""`sanawm generate`: first frame + camera path -> an mp4 that follows the camera, its cameras and a plot."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..pipelines import GenerationConfig

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate a camera-following video from a first frame",
        description="First frame + camera path -> an mp4 that follows the camera (and its cameras.json and a "
        "trajectory plot). With no arguments: the small default model shipped in the package, its example "
        "first frame and a one-minute key path. Options left unset take the model's defaults "
        "(its generation.json).",
    )
    p.add_argument("--model", help="a local pipeline folder (default: the shipped small model)")
    p.add_argument("--image", help="first frame, any size; resized and centre-cropped (default: the example)")
    p.add_argument("--prompt", default="", help="text caption (ignored by models trained without text)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--actions", help='key actions, e.g. "w-100,dw-60" (see README, Cameras)')
    src.add_argument("--trajectory", help="a trajectory file (json, npz, or --trajectory-format)")
    p.add_argument("--trajectory-format", help="format of --trajectory when its extension is ambiguous")
    p.add_argument("--seconds", type=float, help="length (default: the model's; 60 s for the shipped one)")
    p.add_argument("--fps", type=float)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--fov", type=float, help="horizontal field of view when the path has no intrinsics")
    p.add_argument("--mode", choices=["bidirectional", "chunk-causal", "streaming"])
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--context-sigma",
        type=float,
        help="chunk-wise modes: re-noise each finished chunk to this σ in [0, 1) before the network reads "
        "it as context, against drift (0: clean; training covers σ <= 0.1, so try 0.02-0.1)",
    )
    p.add_argument(
        "--teacher",
        action="store_true",
        help="use the multi-step model even when the pipeline folder has a distilled student/ (else used)",
    )
    p.add_argument(
        "--refine",
        metavar="FOLDER",
        nargs="?",
        const="",
        help="stage-2 refiner (streaming: refines each chunk right behind stage 1). Alone: the pipeline's "
        "own small refiner (its refiner/, `sanawm refine export`); with FOLDER: a local diffusers "
        "SanaWMLTX2Refiner folder, for models in the LTX-2 latent space",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network's blocks: pays a compilation once, then runs faster (for GPUs)",
    )
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="streaming on a CUDA device: capture each network call shape once as a CUDA graph and replay "
        "it (same video, far fewer kernel launches; with --compile the fastest stream; ~2 GB GPU memory "
        "per graph at 720p)",
    )
    p.add_argument("--preview", action="store_true", help="draw a trajectory minimap in the video's corner")
    p.add_argument("--out", default="out.mp4")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16" if torch.cuda.is_available() else "fp32")
    p.set_defaults(run=run)


def run(args) -> dict:
    from ..cameras import load_trajectory
    from ..cameras.formats import save_trajectory
    from ..cameras.plot import add_minimap, plot_trajectory
    from ..data import write_video
    from ..pipelines import WorldModelPipeline
    from ..pipelines.world_model import DEFAULT_MODEL, EXAMPLE_ACTIONS, EXAMPLE_IMAGE
    from ..sampling import check_context_sigma

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must end in .mp4, got {out.name}")
    image = args.image if args.image is not None else EXAMPLE_IMAGE
    if not Path(image).is_file():  # before loading the model
        raise ValueError(f"--image {image} does not exist; pass a PNG/JPEG first frame (or leave it out)")
    if args.context_sigma is not None:  # before loading the model
        check_context_sigma(args.context_sigma)
    if args.cuda_graphs and torch.device(args.device).type != "cuda":
        raise ValueError(
            f"--cuda-graphs needs a CUDA device: pass --device cuda (got --device {args.device})"
        )
    actions = args.actions
    if actions is None and args.trajectory is None:
        actions = EXAMPLE_ACTIONS
        print(f'sanawm generate: no --actions or --trajectory; using --actions "{actions}"', file=sys.stderr)
    trajectory = None if args.trajectory is None else load_trajectory(args.trajectory, args.trajectory_format)
    model = args.model if args.model is not None else DEFAULT_MODEL
    pipe = WorldModelPipeline.from_pretrained(
        model,
        dtype=DTYPES[args.dtype],
        device=args.device,
        student=False if args.teacher else None,
    )
    if args.compile:
        pipe.compile()
    refiner = None
    if args.refine == "":
        if pipe.refiner is None:
            raise ValueError(
                f"--refine without a folder uses the pipeline's own refiner, but {model} has no "
                "refiner/; train and write one with `sanawm refine train` and `sanawm refine export` "
                "(recipes/refiner_default.sh), or, for a model with the LTX-2 VAE, pass --refine "
                "LTX2_REFINER_FOLDER"
            )
        refiner = pipe.refiner
    elif args.refine is not None:
        from ..refine import LTX2Refiner

        refiner = LTX2Refiner.from_folder(args.refine, device=args.device, dtype=DTYPES[args.dtype])
    cfg = pipe.generation_config(
        seconds=args.seconds,
        fps=args.fps,
        height=args.height,
        width=args.width,
        mode=args.mode,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        fov_deg=args.fov,
        context_sigma=args.context_sigma,
    )
    if args.cuda_graphs:  # the pipeline refuses them in other modes than streaming, naming the fix
        pipe.enable_cuda_graphs()
    bar = _progress(cfg)
    t0 = time.perf_counter()
    result = pipe.generate(
        image,
        args.prompt,
        trajectory=trajectory,
        actions=actions,
        config=cfg,
        progress=bar.update_to,
        refiner=refiner,
    )
    bar.close()
    seconds = time.perf_counter() - t0
    # Write everything into a temporary folder, then move into place: no partial outputs on failure.
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        tmp = Path(tmp)
        frames = add_minimap(result.frames, result.trajectory) if args.preview else result.frames
        write_video(tmp / "video.mp4", frames, cfg.fps, preset="veryfast")
        save_trajectory(result.trajectory, tmp / "cameras.json")
        plot_trajectory(result.trajectory, tmp / "trajectory.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        cams, plot = out.with_suffix(".cameras.json"), out.with_suffix(".trajectory.png")
        shutil.move(tmp / "video.mp4", out)
        shutil.move(tmp / "cameras.json", cams)
        shutil.move(tmp / "trajectory.png", plot)
    return {
        "video": str(out),
        "cameras": str(cams),
        "plot": str(plot),
        "frames": int(len(result.frames)),
        "fps": cfg.fps,
        "size": [cfg.height, cfg.width],
        "mode": cfg.mode,
        "context_sigma": cfg.context_sigma,
        "network": "student" if pipe.is_student else "teacher",
        "refined": refiner is not None,
        "cuda_graphs": None if pipe.stream_graphs is None else dataclasses.asdict(pipe.stream_graphs.stats),
        "seconds_taken": round(seconds, 2),
    }


def _progress(cfg: GenerationConfig):
    from tqdm import tqdm

    bar = tqdm(
        total=None, desc=f"generating ({cfg.mode})", unit="step" if cfg.mode == "bidirectional" else "chunk"
    )

    def update_to(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        if done == total:  # sampling is over; the VAE decode that follows takes a while on a CPU
            bar.set_description("sampled; decoding the video")
        bar.refresh()

    bar.update_to = update_to
    return bar
