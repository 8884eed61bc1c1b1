"""Structure from motion on video frames with pycolmap: extraction, matching, mapping, bundle adjustment.

    result = run_sfm(frames, SfmOptions(), intrinsics=None)   # frames (F, H, W, 3) uint8, in time order

Steps (timings of each are kept in `SfmResult.timings`):
1. The frames are downscaled so their longest side is `max_image_size` and written as PNG to a
   temporary folder (COLMAP reads images from disk).
2. SIFT features (at most `max_features` a frame), one shared camera (or one per frame).
3. Sequential matching: frame i with i+1 … i+overlap and i+2ᵏ; plus loop-closure candidates found by a
   bag of words learnt on the clip (`loops.py`), so revisits link up. Geometric verification on all.
4. Unknown intrinsics: the focal length is estimated from the verified fundamental matrices
   (`selfcal.py`) and mapping starts from it with the intrinsics held fixed; bundle adjustment frees
   them at the end. Known intrinsics are held fixed throughout (PINHOLE).
5. Incremental mapping (COLMAP) or global mapping (GLOMAP); the largest model is kept. If the fixed
   focal length registers fewer than half the frames, mapping runs again refining it as it goes.
6. A final global bundle adjustment over all frames and points (focal length and distortion free
   unless given).

Coordinates: every number in `SfmResult` is in pixels of the input frames with sanawm's convention
(integer coordinates address pixel centres). COLMAP's own convention puts the first pixel's centre at
(0.5, 0.5); the conversion (scale back, then −0.5) happens here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .loops import loop_candidates
from .selfcal import FocalEstimate, focal_from_fundamentals

MAPPERS = ("incremental", "global")
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
_MIN_REGISTERED_BEFORE_RETRY = 0.5


def _pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise ImportError(
            "sanawm annotate needs pycolmap (structure from motion); install it with "
            "`pip install 'sanawm[annotate]'` or `pip install pycolmap`"
        ) from None
    return pycolmap


@dataclass(frozen=True)
class SfmOptions:
    """How structure from motion runs. Defaults are tuned for video (see docs/benchmarks.md).

    max_image_size: longest image side, in pixels, that feature extraction sees (frames are downscaled).
    max_features: SIFT features kept per frame.
    first_octave: SIFT's first octave: -1 also detects at twice the resolution (more, finer
        features, about 3x slower), 0 starts at the image's own resolution; None: -1 for images
        whose longest side (after downscaling) is under 640 pixels, else 0.
    overlap, quadratic_overlap: sequential matching window (i+1 … i+overlap, and i+2ᵏ).
    loop_closure: also match frames far apart in time that look alike (revisits).
    mapper: "incremental" (COLMAP) or "global" (GLOMAP).
    camera_model: COLMAP model while estimating; the output keeps its pinhole part (fx, fy, cx, cy).
    per_frame_intrinsics: one camera per frame (zooming footage) instead of one shared camera.
    final_bundle_adjustment: a last global bundle adjustment over everything.
    threads: CPU threads (0: all cores).
    seed: random seed for RANSAC and the vocabulary.
    """

    max_image_size: int = 800
    max_features: int = 2048
    first_octave: int | None = None
    overlap: int = 10
    quadratic_overlap: bool = True
    loop_closure: bool = True
    mapper: str = "incremental"
    camera_model: str = "SIMPLE_RADIAL"
    per_frame_intrinsics: bool = False
    final_bundle_adjustment: bool = True
    threads: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mapper not in MAPPERS:
            raise ValueError(f"mapper must be one of {MAPPERS}, got {self.mapper!r}")
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(f"camera_model must be one of {CAMERA_MODELS}, got {self.camera_model!r}")
        if self.first_octave not in (None, -1, 0, 1):
            raise ValueError(f"SfmOptions.first_octave must be -1, 0 or 1, got {self.first_octave!r}")
        for name, low in (("max_image_size", 64), ("max_features", 64), ("overlap", 1), ("threads", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"SfmOptions.{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class SfmResult:
    """What structure from motion recovered, one entry per input frame (unregistered: NaN / 0 / empty).

    registered: (F,) bool. c2w: (F, 4, 4) camera-to-world, arbitrary similarity frame (NaN where not
    registered). intrinsics: (F, 4) fx, fy, cx, cy in input pixels (NaN where not registered with
    per-frame cameras). reprojection_error: (F,) mean pixels. num_points: (F,) observed 3D points.
    observations: per frame, (N, 3) rows (u, v, z): pixel of a 3D point and its depth along the
    camera's z axis in reconstruction units. camera: COLMAP model name and parameters (shared camera,
    work resolution). focal_prior: the self-calibration, if it ran. num_points3d: points in the model.
    """

    registered: np.ndarray
    c2w: np.ndarray
    intrinsics: np.ndarray
    reprojection_error: np.ndarray
    num_points: np.ndarray
    observations: list[np.ndarray]
    image_size: tuple[int, int]
    work_size: tuple[int, int]
    camera: dict
    focal_prior: FocalEstimate | None
    num_models: int
    num_points3d: int
    loop_pairs: int
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def registered_ratio(self) -> float:
        return float(self.registered.mean())

    @property
    def mean_reprojection_error(self) -> float:
        """Mean over all observations of registered frames, in input pixels."""
        n = self.num_points[self.registered]
        if n.sum() == 0:
            return float("nan")
        return float((self.reprojection_error[self.registered] * n).sum() / n.sum())


@contextlib.contextmanager
def _quiet_colmap(pycolmap, verbose: bool):
    """COLMAP logs every step to stderr; keep errors only unless verbose."""
    old = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = old if verbose else 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


class _Clock:
    """Wall and CPU seconds (all threads of this process) per named stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c


def _work_size(h: int, w: int, max_side: int) -> tuple[float, tuple[int, int]]:
    """(scale, (h', w')): one scale for both axes, so square pixels stay square (the image loses at
    most a pixel's fraction at its right and bottom edges instead of being stretched)."""
    s = min(1.0, max_side / max(h, w))
    return s, (max(16, int(h * s)), max(16, int(w * s)))


def _write_images(frames: np.ndarray, folder: Path, scale: float, size: tuple[int, int]) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    box = (0.0, 0.0, size[1] / scale, size[0] / scale)  # the input region that maps onto the work image
    for i, frame in enumerate(frames):
        img = Image.fromarray(frame)
        if scale != 1.0:
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
        name = f"{i:06d}.png"
        img.save(folder / name, compress_level=1)
        names.append(name)
    return names


def _colmap_params(model: str, k: np.ndarray) -> list[float]:
    """COLMAP parameters of `model` for pinhole intrinsics k = (fx, fy, cx, cy), no distortion."""
    fx, fy, cx, cy = (float(v) for v in k)
    f = (fx + fy) / 2.0
    return {
        "SIMPLE_PINHOLE": [f, cx, cy],
        "PINHOLE": [fx, fy, cx, cy],
        "SIMPLE_RADIAL": [f, cx, cy, 0.0],
        "RADIAL": [f, cx, cy, 0.0, 0.0],
        "OPENCV": [fx, fy, cx, cy, 0.0, 0.0, 0.0, 0.0],
    }[model]


def _to_work(k: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Input-pixel (sanawm) intrinsics -> work-pixel (COLMAP) intrinsics."""
    sx, sy = scale
    return np.array([k[0] * sx, k[1] * sy, (k[2] + 0.5) * sx, (k[3] + 0.5) * sy])


def _to_input(k: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    sx, sy = scale
    return np.array([k[0] / sx, k[1] / sy, k[2] / sx - 0.5, k[3] / sy - 0.5])


def _self_calibrate(pycolmap, db_path: Path, width: int, height: int) -> FocalEstimate | None:
    """Focal length from the database's verified fundamental matrices (None when there are none)."""
    with pycolmap.Database.open(db_path) as db:
        _, geometries = db.read_two_view_geometries()
    fundamentals, weights = [], []
    for g in geometries:
        # pairs COLMAP explained by a homography (planar scene, pure rotation) say nothing about f
        if g.config == pycolmap.TwoViewGeometryConfiguration.UNCALIBRATED and g.F is not None:
            fundamentals.append(np.asarray(g.F, dtype=np.float64))
            weights.append(float(len(g.inlier_matches)))
    if not fundamentals:
        return None
    return focal_from_fundamentals(np.stack(fundamentals), np.array(weights), width, height)


def _set_cameras(pycolmap, db_path: Path, params_of, prior: bool) -> None:
    with pycolmap.Database.open(db_path) as db:
        for cam in db.read_all_cameras():
            cam.params = params_of(cam)
            cam.has_prior_focal_length = prior
            db.update_camera(cam)


def _matching_options(pycolmap, opts: SfmOptions, threads: int):
    matching = pycolmap.FeatureMatchingOptions(num_threads=threads, use_gpu=False)
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = opts.seed
    return matching, verification


def _match_sequential(pycolmap, db_path: Path, opts: SfmOptions, threads: int, device) -> None:
    matching, verification = _matching_options(pycolmap, opts, threads)
    pairing = pycolmap.SequentialPairingOptions(
        overlap=opts.overlap, quadratic_overlap=opts.quadratic_overlap, num_threads=threads
    )
    pycolmap.match_sequential(db_path, matching, pairing, verification, device=device)


def _match_loops(pycolmap, db_path: Path, opts: SfmOptions, threads: int, device, workdir: Path) -> int:
    """Match the loop-closure candidates of `loops.py`; returns how many pairs were tried."""
    with pycolmap.Database.open(db_path) as db:
        images = sorted(db.read_all_images(), key=lambda im: im.name)
        descriptors = [db.read_descriptors(im.image_id).data for im in images]
    pairs = loop_candidates(descriptors, min_gap=opts.overlap, seed=opts.seed)
    if not pairs:
        return 0
    pair_file = workdir / "loop_pairs.txt"
    pair_file.write_text("".join(f"{images[i].name} {images[j].name}\n" for i, j in pairs))
    matching, verification = _matching_options(pycolmap, opts, threads)
    imported = pycolmap.ImportedPairingOptions(match_list_path=str(pair_file))
    pycolmap.match_image_pairs(db_path, matching, imported, verification, device=device)
    return len(pairs)


def _map(pycolmap, db_path, image_dir, out_dir, opts, threads, n, fixed_intrinsics: bool) -> list:
    """Run the mapper; returns its reconstructions, largest first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if opts.mapper == "global":
        g = pycolmap.GlobalPipelineOptions(num_threads=threads, random_seed=opts.seed)
        g.min_model_size = min(3, n)
        g.mapper.global_positioning.use_gpu = False
        g.mapper.bundle_adjustment.ceres.use_gpu = False
        g.mapper.bundle_adjustment.refine_focal_length = not fixed_intrinsics
        g.mapper.bundle_adjustment.refine_extra_params = not fixed_intrinsics
        models = pycolmap.global_mapping(db_path, image_dir, out_dir, g)
    else:
        o = pycolmap.IncrementalPipelineOptions(
            num_threads=threads, random_seed=opts.seed, extract_colors=False, max_num_models=10
        )
        o.min_model_size = min(10, max(3, n // 4))
        o.mapper.random_seed = opts.seed
        o.triangulation.random_seed = opts.seed
        # global bundle adjustment after every 25 % growth instead of 10 %: video adds frames in order,
        # local bundle adjustment keeps the newest ones right, and a final one follows.
        o.ba_global_frames_ratio = o.ba_global_points_ratio = 1.25
        o.ba_global_max_num_iterations = 30
        if fixed_intrinsics:
            o.ba_refine_focal_length = o.ba_refine_extra_params = False
            o.mapper.abs_pose_refine_focal_length = o.mapper.abs_pose_refine_extra_params = False
        models = pycolmap.incremental_mapping(db_path, image_dir, out_dir, o)
    return sorted(models.values(), key=lambda r: r.num_reg_images(), reverse=True)


def _bundle_adjust(pycolmap, rec, threads: int, refine_intrinsics: bool) -> None:
    ba = pycolmap.BundleAdjustmentOptions(
        refine_focal_length=refine_intrinsics,
        refine_extra_params=refine_intrinsics,
        refine_principal_point=False,
        print_summary=False,
    )
    ba.ceres.use_gpu = False
    ba.ceres.solver_options.num_threads = threads
    ba.ceres.solver_options.max_num_iterations = 50
    pycolmap.bundle_adjustment(rec, ba)


def _read_model(rec, names: list[str], scale) -> dict:
    """Per-frame poses, intrinsics, reprojection errors and observations from a reconstruction."""
    n = len(names)
    index = {name: i for i, name in enumerate(names)}
    registered = np.zeros(n, bool)
    c2w = np.full((n, 4, 4), np.nan)
    intrinsics = np.full((n, 4), np.nan)
    reproj = np.full(n, np.nan)
    counts = np.zeros(n, np.int64)
    observations = [np.zeros((0, 3)) for _ in range(n)]
    xyz_of = {pid: p.xyz for pid, p in rec.points3D.items()}
    for image in rec.images.values():
        i = index.get(image.name)
        if i is None or not image.has_pose:
            continue
        cam = image.camera
        k_work = np.array(
            [cam.focal_length_x, cam.focal_length_y, cam.principal_point_x, cam.principal_point_y]
        )
        w2c = image.cam_from_world()
        pose = np.eye(4)
        pose[:3] = w2c.inverse().matrix()
        registered[i], c2w[i], intrinsics[i] = True, pose, _to_input(k_work, scale)
        pts = image.get_observation_points2D()
        if len(pts) == 0:
            reproj[i] = np.nan
            continue
        uv = np.array([p.xy for p in pts])
        xyz = np.array([xyz_of[p.point3D_id] for p in pts])
        cam_pts = w2c * xyz
        proj = cam.img_from_cam(cam_pts, check_cheirality=False)
        err = np.linalg.norm(proj - uv, axis=1) / np.sqrt(scale[0] * scale[1])
        reproj[i], counts[i] = float(err.mean()), len(pts)
        u = uv[:, 0] / scale[0] - 0.5
        v = uv[:, 1] / scale[1] - 0.5
        observations[i] = np.stack([u, v, cam_pts[:, 2]], axis=1)
    return {
        "registered": registered,
        "c2w": c2w,
        "intrinsics": intrinsics,
        "reprojection_error": reproj,
        "num_points": counts,
        "observations": observations,
    }


def _set_intrinsics(
    pycolmap, db_path, names, model, known, scale, work_size
) -> tuple[FocalEstimate | None, bool]:
    """Write the starting intrinsics into the database; returns (self-calibration, hold them fixed)."""
    if known is not None:
        by_name = {name: i for i, name in enumerate(names)}
        with pycolmap.Database.open(db_path) as db:
            frame_of_camera = {im.camera_id: by_name[im.name] for im in db.read_all_images()}
        _set_cameras(
            pycolmap, db_path,
            lambda cam: _colmap_params("PINHOLE", _to_work(known[frame_of_camera[cam.camera_id]], scale)),
            prior=True,
        )  # fmt: skip
        return None, True
    work_h, work_w = work_size
    prior = _self_calibrate(pycolmap, db_path, work_w, work_h)
    if prior is None or not prior.identified:
        return prior, False  # keep COLMAP's guess (1.2 x the longest side) and let mapping refine it
    k = np.array([prior.focal, prior.focal, work_w / 2.0, work_h / 2.0])
    _set_cameras(pycolmap, db_path, lambda cam: _colmap_params(model, k), prior=True)
    return prior, True


def check_frames(frames: np.ndarray, who: str) -> None:
    """The frames every annotation step takes: (F, H, W, 3) uint8 RGB, at least two of them."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(
            f"{who} needs (F, H, W, 3) uint8 RGB frames with F >= 2, got {frames.dtype} {frames.shape}"
        )


def run_sfm(
    frames: np.ndarray,
    options: SfmOptions | None = None,
    intrinsics=None,
    workdir=None,
    verbose: bool = False,
) -> SfmResult:
    """Camera poses and intrinsics of video frames by structure from motion (see module docstring).

    Args:
        frames: (F, H, W, 3) uint8 RGB (or (F, H, W) grey), in time order, F >= 2.
        options: `SfmOptions`.
        intrinsics: known (4,) or (F, 4) (fx, fy, cx, cy) in input pixels (sanawm convention), held
            fixed; None: estimated.
        workdir: folder for COLMAP's images, database and model (default: a temporary folder, removed).
        verbose: let COLMAP log to stderr.

    Returns:
        `SfmResult`; frames it could not register have registered = False.

    Raises:
        ValueError: bad frames or intrinsics.
        RuntimeError: no model could be built at all (no overlap between frames, no texture).
    """
    pycolmap = _pycolmap()
    opts = options or SfmOptions()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    check_frames(frames, "run_sfm")
    n, h, w, _ = frames.shape
    known = None
    if intrinsics is not None:
        from ..cameras.intrinsics import as_intrinsics_vec4

        known = as_intrinsics_vec4(intrinsics, n)
    s, work_size = _work_size(h, w, opts.max_image_size)
    scale = (s, s)
    threads = opts.threads or (os.cpu_count() or 1)
    device = pycolmap.Device.cpu
    clock = _Clock()
    notes: list[str] = []
    model = "PINHOLE" if known is not None else opts.camera_model
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sanawm-sfm-"))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        image_dir, db_path = workdir / "images", workdir / "database.db"
        if image_dir.exists() or db_path.exists():
            raise ValueError(f"workdir {workdir} already holds images/ or database.db; use an empty folder")
        stack.enter_context(_quiet_colmap(pycolmap, verbose))
        pycolmap.set_random_seed(opts.seed)

        with clock.stage("write_images"):
            names = _write_images(frames, image_dir, s, work_size)
        with clock.stage("extract"):
            reader = pycolmap.ImageReaderOptions(camera_model=model)
            extraction = pycolmap.FeatureExtractionOptions(num_threads=threads, use_gpu=False)
            extraction.max_image_size = max(work_size)
            extraction.sift.max_num_features = opts.max_features
            extraction.sift.first_octave = (
                opts.first_octave if opts.first_octave is not None else (-1 if max(work_size) < 640 else 0)
            )
            shared = not opts.per_frame_intrinsics and (known is None or np.allclose(known, known[0]))
            mode = pycolmap.CameraMode.SINGLE if shared else pycolmap.CameraMode.PER_IMAGE
            pycolmap.extract_features(db_path, image_dir, names, mode, reader, extraction, device=device)
        with clock.stage("match"):
            _match_sequential(pycolmap, db_path, opts, threads, device)
        with clock.stage("self_calibrate"):
            prior, fixed = _set_intrinsics(pycolmap, db_path, names, model, known, scale, work_size)
        if known is None and not fixed:
            notes.append(
                "the focal length could not be read off the image pairs (little camera rotation); "
                "mapping refined it from COLMAP's initial guess"
            )
        loop_pairs = 0
        if opts.loop_closure:
            with clock.stage("match_loops"):
                loop_pairs = _match_loops(pycolmap, db_path, opts, threads, device, workdir)
        with clock.stage("map"):
            models = _map(pycolmap, db_path, image_dir, workdir / "sparse", opts, threads, n, fixed)
            got = models[0].num_reg_images() if models else 0
            if known is None and fixed and got < _MIN_REGISTERED_BEFORE_RETRY * n:
                notes.append(
                    f"with the self-calibrated focal length held fixed only {got}/{n} frames registered; "
                    "mapped again refining it"
                )
                retry = _map(pycolmap, db_path, image_dir, workdir / "sparse_retry", opts, threads, n, False)
                if retry and retry[0].num_reg_images() > got:
                    models = retry
        if not models:
            raise RuntimeError(
                f"structure from motion found no model in {n} frames: the frames share too few matched "
                "features (static or textureless footage, or cuts between unrelated shots)"
            )
        rec = models[0]
        if opts.final_bundle_adjustment:
            with clock.stage("bundle_adjust"):
                _bundle_adjust(pycolmap, rec, threads, refine_intrinsics=known is None)
        read = _read_model(rec, names, scale)
        cam = next(iter(rec.cameras.values()))
        camera = {"model": cam.model_name, "params": [float(p) for p in cam.params], "size": list(work_size)}
    if known is not None:
        read["intrinsics"] = known.copy()
    elif shared:
        # one shared camera: every frame, registered or not, has its intrinsics
        read["intrinsics"] = np.tile(read["intrinsics"][read["registered"]][0], (n, 1))
    return SfmResult(
        **read,
        image_size=(h, w),
        work_size=work_size,
        camera=camera,
        focal_prior=prior,
        num_models=len(models),
        num_points3d=int(rec.num_points3D()),
        loop_pairs=loop_pairs,
        timings=clock.wall,
        cpu_timings=clock.cpu,
        notes=tuple(notes),
    )
