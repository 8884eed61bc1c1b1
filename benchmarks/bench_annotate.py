"""Pose annotation on KITTI odometry 07 (160 real frames with ground truth), intrinsics estimated.

    python benchmarks/bench_annotate.py --out bench_annotate.json [--baseline] [--world]

Ours: `sanawm.annotate.annotate_frames` with default options (the ground-truth poses only score it).
--baseline: a plain pycolmap run for comparison (full-resolution SIFT, sequential matching, incremental
mapping, all default options; takes minutes). --world: also a procedural world render (gt-depth mode).
Scores: registered frames, focal length vs the calibration, ATE after Sim(3) (also as % of the path
length), SPEC §8 RotErr / TransErr / CamMC (every frame, and every 4th as SANA-WM-Bench), frames/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sanawm.annotate import annotate_frames  # noqa: E402
from sanawm.cameras.formats.kitti import read_kitti  # noqa: E402
from sanawm.eval.camera import ate, camera_metrics  # noqa: E402

KITTI07 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "kitti07"


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _scores(c2w, gt, focal, focal_true, registered, wall, cpu, n) -> dict:
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    r = registered
    a = ate(c2w[r], gt[r])
    every1 = camera_metrics(c2w[r], gt[r], every=1)
    every4 = camera_metrics(c2w[r], gt[r], every=4)
    return {
        "frames": n,
        "registered": int(r.sum()),
        "focal_px": focal,
        "focal_error_percent": 100.0 * (focal / focal_true - 1.0),
        "ate_rmse_m": a.rmse,
        "path_length_m": path,
        "ate_percent_of_path": 100.0 * a.rmse / path,
        "every_frame": every1.as_dict(),
        "every_4th_frame": every4.as_dict(),
        "wall_s": wall,
        "cpu_s": cpu,
        "frames_per_s": n / wall,
    }


def run_ours(frames, gt, focal_true) -> dict:
    t, c = time.perf_counter(), _cpu_s()
    ann = annotate_frames(frames, fps=10.0)
    wall, cpu = time.perf_counter() - t, _cpu_s() - c
    out = _scores(ann.trajectory.c2w, gt, float(ann.trajectory.intrinsics[:, 0].mean()), focal_true,
                  ann.registered, wall, cpu, len(frames))  # fmt: skip
    report = ann.report()
    out.update(
        verdict=report["verdict"],
        reprojection_error_px=report["mean_reprojection_error_px"],
        stages_wall_s={**ann.timings, **{f"sfm.{k}": v for k, v in ann.sfm.timings.items()}},
        stages_cpu_s=ann.sfm.cpu_timings,
        sfm=report["sfm"],
        focal_prior=report["focal_prior"],
    )
    return out


def run_baseline(image_dir: Path, gt, focal_true) -> dict:
    """Plain pycolmap: default SIFT at full resolution, sequential matching, incremental mapping."""
    import pycolmap

    work = Path(tempfile.mkdtemp(prefix="sanawm-baseline-"))
    try:
        pycolmap.logging.minloglevel = 2
        t, c = time.perf_counter(), _cpu_s()
        db = work / "database.db"
        pycolmap.extract_features(db, image_dir, camera_mode=pycolmap.CameraMode.SINGLE)
        pycolmap.match_sequential(db)
        models = pycolmap.incremental_mapping(db, image_dir, work / "sparse")
        wall, cpu = time.perf_counter() - t, _cpu_s() - c
        rec = max(models.values(), key=lambda m: m.num_reg_images())
        names = sorted(p.name for p in image_dir.iterdir())
        registered = np.zeros(len(names), bool)
        c2w = np.tile(np.eye(4), (len(names), 1, 1))
        for image in rec.images.values():
            if image.has_pose:
                i = names.index(image.name)
                registered[i] = True
                c2w[i, :3] = image.cam_from_world().inverse().matrix()
        focal = float(next(iter(rec.cameras.values())).mean_focal_length())
        return _scores(c2w, gt, focal, focal_true, registered, wall, cpu, len(names))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_world(seed: int = 5) -> dict:
    from sanawm.eval.align import umeyama
    from sanawm.world import build_scene, path_for, render_trajectory

    scene = build_scene(seed)
    traj = path_for(scene, seed=0, kind="orbit", seconds=4, fps=8, size=(192, 256), fov_deg=60)
    rgb, depth = render_trajectory(scene, traj, depth=True)
    t = time.perf_counter()
    ann = annotate_frames(rgb, fps=8.0, gt_depth=depth)
    wall = time.perf_counter() - t
    m = camera_metrics(ann.trajectory.c2w, traj.c2w, every=1)
    scale = umeyama(ann.trajectory.c2w[:, :3, 3], traj.relative_to_first().c2w[:, :3, 3]).s
    return {
        "scene_seed": seed, "path": "orbit 4 s at 8 fps, 256x192, 60° fov", "frames": len(rgb),
        "registered": int(ann.registered.sum()),
        "focal_error_percent": 100.0 * (ann.trajectory.intrinsics[:, 0].mean() / traj.intrinsics[0, 0] - 1),
        **m.as_dict(), "metric_scale_error_percent": 100.0 * (scale - 1.0), "wall_s": wall,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_annotate.json"))
    ap.add_argument("--baseline", action="store_true", help="also the plain pycolmap run (minutes)")
    ap.add_argument("--world", action="store_true", help="also a procedural world render")
    args = ap.parse_args()
    if not KITTI07.is_dir():
        raise SystemExit(f"KITTI test sequence {KITTI07} is absent")
    files = sorted((KITTI07 / "image_0").iterdir())
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    cams = read_kitti(KITTI07)
    gt, focal_true = cams.c2w, float(cams.intrinsics[0, 0])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "load_average_before": os.getloadavg(),
        "data": f"KITTI odometry 07, first {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}",
        "ours": run_ours(frames, gt, focal_true),
    }
    if args.baseline:
        result["baseline"] = run_baseline(KITTI07 / "image_0", gt, focal_true)
    if args.world:
        result["world"] = run_world()
    result["load_average_after"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
