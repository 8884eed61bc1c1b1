"""`sanawm generate`: first frame + camera path -> an mp4 that follows the camera, its cameras and a plot."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..pipelines import GenerationConfig

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate a camera-following video from a first frame")
    p.add_argument("--model", help="a local SANA-WM pipeline folder in diffusers format")
    p.add_argument("--image", help="first frame (any size; resized and centre-cropped)")
    p.add_argument("--prompt", default="", help="text caption")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--actions", help='key actions, e.g. "w-100,dw-60" (see README, Cameras)')
    src.add_argument("--trajectory", help="a trajectory file (json, npz, or --trajectory-format)")
    p.add_argument("--trajectory-format", help="format of --trajectory when its extension is ambiguous")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=16.0)
    p.add_argument("--height", type=int, default=704)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument(
        "--fov", type=float, default=60.0, help="horizontal field of view when the path has no intrinsics"
    )
    p.add_argument("--mode", choices=["bidirectional", "chunk-causal", "streaming"], default="bidirectional")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
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

    if args.model is None:
        raise ValueError(
            "no model given: sanawm does not ship a default model yet; pass --model PATH to a local SANA-WM "
            "pipeline folder in diffusers format (transformer/, vae/, text_encoder/, tokenizer/, scheduler/)"
        )
    if args.image is None:
        raise ValueError("pass --image FILE: the first frame of the video")
    if args.actions is None and args.trajectory is None:
        raise ValueError('pass --actions "w-100,dw-60" or --trajectory FILE for the camera path')
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must end in .mp4, got {out.name}")
    cfg = GenerationConfig(
        seconds=args.seconds,
        fps=args.fps,
        height=args.height,
        width=args.width,
        mode=args.mode,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        fov_deg=args.fov,
    )
    trajectory = None if args.trajectory is None else load_trajectory(args.trajectory, args.trajectory_format)
    pipe = WorldModelPipeline.from_pretrained(args.model, dtype=DTYPES[args.dtype], device=args.device)
    bar = _progress(cfg)
    t0 = time.perf_counter()
    result = pipe.generate(
        args.image,
        args.prompt,
        trajectory=trajectory,
        actions=args.actions,
        config=cfg,
        progress=bar.update_to,
    )
    bar.close()
    seconds = time.perf_counter() - t0
    # Write everything into a temporary folder, then move into place: no partial outputs on failure.
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        tmp = Path(tmp)
        frames = add_minimap(result.frames, result.trajectory) if args.preview else result.frames
        write_video(tmp / "video.mp4", frames, cfg.fps)
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
        bar.refresh()

    bar.update_to = update_to
    return bar
