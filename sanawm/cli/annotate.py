"""`sanawm annotate INPUT --out DIR`: camera poses and intrinsics for a video, a frame folder or a batch.

sanawm annotate drive.mp4 --out ann/drive [--stride 2 | --fps 10] [--max-frames N]
                [--focal F | --intrinsics fx,fy,cx,cy] [--gt-poses FILE | --gt-depth FILE | --depth-model DIR]
sanawm annotate videos/ --out ann/ --batch --workers 2 [--timeout 600] [--retry-failed]
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..annotate.filters import FilterLimits
from ..annotate.sfm import CAMERA_MODELS, MAPPERS, SfmOptions


def add_parser(sub) -> None:
    p = sub.add_parser(
        "annotate",
        help="camera poses + intrinsics for a video / frame folder (structure from motion), or a batch",
        description="Estimate every frame's camera-to-world pose and intrinsics with pycolmap and write a "
        "sanawm clip with per-frame confidence and a report (needs `pip install 'sanawm[annotate]'`).",
    )
    p.add_argument(
        "input", type=Path, help="a video file, a folder of frames, or (with --batch) a folder of videos"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (batch: one sub-folder per item)")
    p.add_argument("--batch", action="store_true", help="annotate every video / frame sub-folder of INPUT")
    p.add_argument("--workers", type=int, default=1, help="batch: clips at once (default 1)")
    p.add_argument(
        "--timeout", type=float, help="batch: seconds per clip before it is stopped and marked failed"
    )
    p.add_argument("--retry-failed", action="store_true", help="batch: re-run clips whose report says failed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output clip")

    s = p.add_argument_group("frames")
    s.add_argument("--stride", type=int, help="keep every N-th frame")
    s.add_argument("--fps", type=float, help="keep frames at this rate (instead of --stride)")
    s.add_argument("--max-frames", type=int, help="keep at most N frames")
    s.add_argument("--folder-fps", type=float, default=10.0, help="frame rate of a frame folder (default 10)")

    c = p.add_argument_group("camera")
    c.add_argument(
        "--focal", type=float, help="known focal length in pixels (fx = fy; centred principal point)"
    )
    c.add_argument("--intrinsics", help="known fx,fy,cx,cy in pixels of the input frames")
    c.add_argument(
        "--per-frame-intrinsics", action="store_true", help="one camera per frame (zooming footage)"
    )
    c.add_argument("--camera-model", choices=CAMERA_MODELS, default="SIMPLE_RADIAL", help="while estimating")

    m = p.add_argument_group("structure from motion")
    m.add_argument(
        "--mapper", choices=MAPPERS, default="incremental", help="COLMAP incremental or GLOMAP global"
    )
    m.add_argument("--max-image-size", type=int, default=800, help="longest side SIFT sees (default 800)")
    m.add_argument("--max-features", type=int, default=2048, help="SIFT features per frame (default 2048)")
    m.add_argument("--overlap", type=int, default=10, help="sequential matching window (default 10)")
    m.add_argument("--no-loop-closure", action="store_true", help="skip matching revisits far apart in time")
    m.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--verbose", action="store_true", help="show COLMAP's log")

    g = p.add_argument_group("scale (default: relative, unit = median scene depth)")
    g.add_argument(
        "--gt-poses", type=Path, help="ground-truth poses (any sanawm trajectory format): Sim(3) onto them"
    )
    g.add_argument(
        "--gt-poses-format", help="format of --gt-poses when its name does not say (kitti, re10k, tum, ...)"
    )
    g.add_argument(
        "--gt-depth", type=Path, help="ground-truth depth (.npz 'depth', .npy or a clip folder): metric"
    )
    g.add_argument("--depth-model", type=Path, help="a LOCAL transformers metric depth model folder: metric")
    g.add_argument("--device", default="cpu", help="device of --depth-model (default cpu)")

    f = p.add_argument_group("filters")
    f.add_argument("--min-registered", type=float, default=0.9, help="fraction of frames (default 0.9)")
    f.add_argument(
        "--min-motion", type=float, default=0.002, help="optical flow / width per frame (default 0.002)"
    )
    f.add_argument("--max-motion", type=float, default=0.15, help="(default 0.15)")
    f.add_argument(
        "--keep-going", action="store_true", help="reconstruct clips that fail the cut / motion filters"
    )
    p.set_defaults(run=run)


def _intrinsics(args):
    if args.focal is not None and args.intrinsics is not None:
        raise ValueError("give --focal or --intrinsics, not both")
    if args.intrinsics is not None:
        try:
            values = [float(x) for x in args.intrinsics.split(",")]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(
                f"--intrinsics must be fx,fy,cx,cy in pixels, e.g. 707,707,601.9,183.1; "
                f"got {args.intrinsics!r}"
            )
        return values
    return None


def run(args) -> int:
    from ..annotate import AnnotateOptions, TransformersDepthEstimator, annotate_batch, annotate_source
    from ..annotate.batch import batch_items
    from ..annotate.frames import image_files

    intrinsics = _intrinsics(args)
    options = AnnotateOptions(
        sfm=SfmOptions(
            max_image_size=args.max_image_size, max_features=args.max_features, overlap=args.overlap,
            loop_closure=not args.no_loop_closure, mapper=args.mapper, camera_model=args.camera_model,
            per_frame_intrinsics=args.per_frame_intrinsics, threads=args.threads, seed=args.seed,
        ),
        limits=FilterLimits(
            min_registered=args.min_registered, min_motion=args.min_motion, max_motion=args.max_motion
        ),
        early_reject=not args.keep_going,
    )  # fmt: skip
    estimator = TransformersDepthEstimator(args.depth_model, args.device) if args.depth_model else None
    kwargs = dict(
        stride=args.stride, fps=args.fps, max_frames=args.max_frames, folder_fps=args.folder_fps,
        gt_poses=args.gt_poses, gt_poses_format=args.gt_poses_format, gt_depth=args.gt_depth,
        depth_estimator=estimator, options=options, verbose=args.verbose,
    )  # fmt: skip
    if args.batch:
        if args.gt_poses or args.gt_depth:
            raise ValueError("--gt-poses / --gt-depth belong to one clip; they cannot be used with --batch")
        summary = annotate_batch(
            args.input, args.out, workers=args.workers, retry_failed=args.retry_failed,
            timeout_s=args.timeout, intrinsics=intrinsics, focal=args.focal,
            **{k: v for k, v in kwargs.items() if k not in ("gt_poses", "gt_depth")},
        )  # fmt: skip
        print(f"{summary['items']} clips: {summary['accepted']} accepted, {summary['rejected']} rejected, "
              f"{summary['failed']} failed; summary in {args.out / 'batch.json'}")  # fmt: skip
        return 0
    if args.input.is_dir() and not image_files(args.input) and batch_items(args.input):
        raise ValueError(
            f"{args.input} holds videos or frame folders, not frames; add --batch to annotate each"
        )
    report = annotate_source(
        args.input, args.out, intrinsics=intrinsics, focal=args.focal, overwrite=args.overwrite, **kwargs
    )
    verdict = report["verdict"]
    line = f"{args.input}: {verdict}"
    if verdict == "failed":
        print(f"{line}: {report['error']}", file=sys.stderr)
        return 1
    if report.get("reasons"):
        line += " (" + "; ".join(report["reasons"]) + ")"
    if "registered" in report:
        line += (
            f"; {report['registered']}/{report['num_frames']} frames registered, reprojection "
            f"{report['mean_reprojection_error_px']:.2f} px, fx {report['intrinsics']['fx']:.1f} px, "
            f"{report['frames_per_second']:.2f} frames/s"
        )
    print(line)
    if "vs_ground_truth" in report:
        m = report["vs_ground_truth"]
        print(f"vs ground truth: ATE {m['ate_rmse']:.4f} ({m['ate_percent_of_path']:.3f}% of the path), "
              f"RotErr {m['RotErr']:.3f}°, TransErr {m['TransErr']:.4f}, CamMC {m['CamMC']:.4f}")  # fmt: skip
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
