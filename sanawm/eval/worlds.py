"""World-model fidelity on held-out procedural worlds: generate from the first frame and the true camera
path, compare with the exact renders (PSNR / SSIM per horizon, revisit consistency), against baselines.

    from sanawm.eval.worlds import evaluate_worlds
    report = evaluate_worlds(pipe, range(1_000_000, 1_000_020), seconds=10, size=256)
    print(report.to_markdown())

Per scene seed: build the scene, plan a path (`path_for`, path seed `path_seed`; the kind cycles through
`kinds`, falling back to the others when a scene has no path of that kind), render the ground truth,
give frame 0 and the path (with the render's intrinsics; the frame already has the output size, so the
network sees exactly the render's cameras) to three methods:

- "model": `pipe.generate` along the path;
- "no_camera": the same sampler, noise and text with the camera and Plücker inputs removed from every
  guidance branch (`pipe.generate(..., drop_camera=True)`): what the network makes of the first frame alone;
- "repeat_first": frame 0 repeated;
- "refined" (with `refiner=`, e.g. the pipeline's own `pipe.refiner`): "model" followed by stage 2. One
  rollout serves both: "model" is its stage-1 latents (`GenerationResult.stage1_latents`) decoded, so
  refined vs model is paired by construction and stage 1 runs once a scene.

Metrics, per method (`sanawm.eval.image_metrics`):
- per-frame PSNR / SSIM against the ground truth (kept in the JSON, for PSNR-vs-time plots);
- per horizon h (seconds, only h <= clip length): frames 0 < t <= h (frame 0 is the given image, so it
  is left out). PSNR is that of the mean squared error over those frames (finite unless every frame is
  exact), SSIM the mean over frames; scene values are averaged over scenes in the tables;
- revisit consistency, for paths whose poses repeat (revisit paths: pose[F − 1 − i] == pose[i]): PSNR /
  SSIM between the frame on the way back (F − 1 − i) and the frame on the way out (i) of the same method,
  over every such pair i < F − 1 − i. The ground truth's own value is the ceiling (renders are exact, so
  +inf / 1.0); "repeat_first" is trivially perfect here and only the other two are informative;
- drift (clips of at least 2 × `DRIFT_SECONDS` = 20 s): PSNR of the first 10 s (frames 0 < t <= 10) minus
  PSNR of the last 10 s (t >= end − 10), both pooled over frames like the horizons; smaller is better.

Held-out seeds: training renders use scene seeds from 0 (`sanawm world render --seed 0`) and path seed
0; evaluation scenes start at `HELD_OUT_SEED_OFFSET` = 1_000_000 (`sanawm eval worlds --seed-offset`) and
paths use path seed 1, so no evaluated scene or path was seen in training.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..pipelines.world_model import WorldModelPipeline
from ..world import build_scene, caption_for, plan_path, render_trajectory
from ..world.camera import parse_size
from .image_metrics import ssim

HELD_OUT_SEED_OFFSET = 1_000_000
DEFAULT_KINDS = ("walk", "revisit")
DEFAULT_HORIZONS = (1.0, 5.0, 10.0, 30.0, 60.0)
METHODS = ("model", "no_camera", "repeat_first", "refined")  # table order; "refined" only with a refiner
PAIRED = (("model", "no_camera"), ("model", "repeat_first"), ("refined", "model"))  # A − B comparisons
PAIRED_HEADER = (
    "Paired per scene (A − B in dB, positive where A is better; drift: B's minus A's): "
    "mean ± standard error, median, scenes where A is better:"
)
DRIFT_SECONDS = 10.0
# Settings added to the report later, with the value every report written before them had.
LEGACY_SETTINGS = {"context_sigma": 0.0}


# ---- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """PSNR (dB) and SSIM over `count` frames (or frame pairs)."""

    psnr: float
    ssim: float
    count: int

    def to_json(self) -> dict:
        return {"psnr": _finite(self.psnr), "ssim": _finite(self.ssim), "count": self.count}

    @classmethod
    def from_json(cls, d: dict) -> Scores:
        return cls(_inf_if_none(d["psnr"]), _inf_if_none(d["ssim"]), int(d["count"]))


def window_scores(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> Scores:
    """Scores of frames a vs b (N, H, W, 3): PSNR of the mean MSE over the N frames, mean SSIM."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return Scores(_psnr_of_mse(mse, data_range), float(np.mean(ssim(a, b, data_range))), len(a))


def _psnr_of_mse(mse: float, data_range: float = 255.0) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def revisit_pairs(c2w: np.ndarray, atol: float = 1e-6) -> list[tuple[int, int]]:
    """Pairs (i, F − 1 − i), i < F − 1 − i, whose camera poses (F, 4, 4) are the same within `atol`."""
    n = len(c2w)
    return [(i, n - 1 - i) for i in range(n // 2) if np.allclose(c2w[i], c2w[n - 1 - i], atol=atol)]


def horizon_frames(num_frames: int, fps: float, horizon: float) -> np.ndarray:
    """Indices of frames with 0 < t <= horizon seconds (t = i / fps)."""
    t = np.arange(num_frames) / fps
    return np.nonzero((t > 0) & (t <= horizon + 1e-9))[0]


@dataclass
class MethodResult:
    """One method on one scene: per-frame curves, per-horizon scores, revisit consistency (or None)."""

    psnr: np.ndarray  # (F,) dB, +inf where exact
    ssim: np.ndarray  # (F,)
    horizons: dict[float, Scores]
    revisit: Scores | None
    drift: float | None = None  # dB, PSNR(first 10 s) − PSNR(last 10 s); None for clips under 20 s

    def to_json(self) -> dict:
        return {
            # per-frame curves to 1e-4 dB / 1e-6 SSIM (tables are computed before rounding): a
            # 20-scene report stays a few hundred kB
            "psnr_per_frame": [None if (v := _finite(x)) is None else round(v, 4) for x in self.psnr],
            "ssim_per_frame": [round(float(x), 6) for x in self.ssim],
            "horizons": {f"{h:g}": s.to_json() for h, s in self.horizons.items()},
            "revisit": None if self.revisit is None else self.revisit.to_json(),
            "drift": None if self.drift is None else _finite(self.drift),
        }

    @classmethod
    def from_json(cls, d: dict) -> MethodResult:
        """Compact reports (docs/) drop the per-frame curves; they load with empty curves, for the tables."""
        return cls(
            np.array([_inf_if_none(x) for x in d.get("psnr_per_frame", [])], dtype=np.float64),
            np.array(d.get("ssim_per_frame", []), dtype=np.float64),
            {float(h): Scores.from_json(v) for h, v in d["horizons"].items()},
            None if d["revisit"] is None else Scores.from_json(d["revisit"]),
            None if d["drift"] is None else _inf_if_none(d["drift"]),
        )


def revisit_scores(frames: np.ndarray, pairs: list[tuple[int, int]]) -> Scores | None:
    """Revisit consistency of a video: the frames on the way back against those on the way out at the
    same poses (`revisit_pairs`); None without pairs."""
    if not pairs:
        return None
    out, back = [i for i, _ in pairs], [j for _, j in pairs]
    return window_scores(frames[back], frames[out])


def score_method(frames, truth, fps: float, horizons, pairs) -> MethodResult:
    """Compare generated `frames` with `truth` (F, H, W, 3) uint8."""
    if frames.shape != truth.shape:
        raise ValueError(f"generated frames have shape {frames.shape}, the ground truth {truth.shape}")
    per_mse = ((frames.astype(np.float64) - truth.astype(np.float64)) ** 2).reshape(len(frames), -1).mean(1)
    with np.errstate(divide="ignore"):  # an exact frame: MSE 0 -> +inf dB, as `psnr` gives
        per_psnr = 10.0 * np.log10(255.0**2 / per_mse)
    per_ssim = np.asarray(ssim(frames, truth))
    clip = (len(truth) - 1) / fps
    by_h = {}
    for h in horizons:
        idx = horizon_frames(len(truth), fps, h)
        if h <= clip + 1e-9 and len(idx):  # window_scores of frames[idx], from the per-frame values
            mse = float(per_mse[idx].mean())
            by_h[float(h)] = Scores(_psnr_of_mse(mse), float(per_ssim[idx].mean()), len(idx))
    revisit = revisit_scores(frames, pairs)
    drift = None
    if clip >= 2 * DRIFT_SECONDS - 1e-9:
        t = np.arange(len(truth)) / fps
        early = per_mse[(t > 0) & (t <= DRIFT_SECONDS + 1e-9)].mean()
        late = per_mse[t >= clip - DRIFT_SECONDS - 1e-9].mean()
        drift = _psnr_of_mse(float(early)) - _psnr_of_mse(float(late))
    return MethodResult(per_psnr, per_ssim, by_h, revisit, drift)


# ---- the report -----------------------------------------------------------------------------------


@dataclass
class SceneResult:
    scene_seed: int
    scene_kind: str
    path_kind: str
    path_seed: int
    frames: int
    revisit_pairs: int
    methods: dict[str, MethodResult]
    ground_truth_revisit: Scores | None  # the ceiling: ground truth out vs back
    seconds_taken: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "scene_seed": self.scene_seed,
            "scene_kind": self.scene_kind,
            "path_kind": self.path_kind,
            "path_seed": self.path_seed,
            "frames": self.frames,
            "revisit_pairs": self.revisit_pairs,
            "ground_truth_revisit": None
            if self.ground_truth_revisit is None
            else self.ground_truth_revisit.to_json(),
            "methods": {m: r.to_json() for m, r in self.methods.items()},
            "seconds_taken": {k: round(v, 3) for k, v in self.seconds_taken.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> SceneResult:
        gt = d["ground_truth_revisit"]
        return cls(
            int(d["scene_seed"]), d["scene_kind"], d["path_kind"], int(d["path_seed"]), int(d["frames"]),
            int(d["revisit_pairs"]), {m: MethodResult.from_json(r) for m, r in d["methods"].items()},
            None if gt is None else Scores.from_json(gt), dict(d.get("seconds_taken", {})),
        )  # fmt: skip


@dataclass
class WorldsReport:
    """Per-scene results and the tables aggregated over scenes (means of the scene values)."""

    settings: dict
    scenes: list[SceneResult]

    def methods(self) -> list[str]:
        """The methods every scene has, in `METHODS` order."""
        return [m for m in METHODS if self.scenes and all(m in s.methods for s in self.scenes)]

    def drift_table(self) -> dict[str, float]:
        """method -> mean drift (dB) over the scenes; empty for clips under 20 s."""
        out = {}
        for m in self.methods():
            got = [s.methods[m].drift for s in self.scenes if s.methods[m].drift is not None]
            if got:
                out[m] = float(np.mean(got))
        return out

    def horizon_table(self) -> dict[str, dict[float, Scores]]:
        """method -> horizon -> mean scores over the scenes long enough for that horizon."""
        table: dict[str, dict[float, Scores]] = {}
        for m in self.methods():
            rows = [s.methods[m].horizons for s in self.scenes]
            hs = sorted({h for r in rows for h in r})
            table[m] = {h: _mean_scores([r[h] for r in rows if h in r]) for h in hs}
        return table

    def revisit_table(self) -> dict[str, Scores]:
        """method (and "ground_truth", the ceiling) -> mean revisit consistency over revisit scenes."""
        out = {}
        for m in self.methods():
            got = [s.methods[m].revisit for s in self.scenes if s.methods[m].revisit is not None]
            if got:
                out[m] = _mean_scores(got)
        gt = [s.ground_truth_revisit for s in self.scenes if s.ground_truth_revisit is not None]
        if gt:
            out["ground_truth"] = _mean_scores(gt)
        return out

    def paired_table(self) -> dict[str, dict[str, Paired]]:
        """Is a difference real? Per comparison "A − B" (`PAIRED`: the model against each baseline, the
        refined rollout against the model) and per horizon ("1 s", ...) and "drift": the per-scene
        differences in dB, positive where A is better (for drift, B's minus A's: less drift is better),
        as mean, standard error, median and wins. Scenes where either side is exact (+inf) are left out."""
        have = set(self.methods())
        out: dict[str, dict[str, Paired]] = {}
        for a, b in PAIRED:
            if a in have and b in have:
                rows = paired_rows([(s.methods[a], s.methods[b]) for s in self.scenes])
                if rows:
                    out[f"{a} − {b}"] = rows
        return out

    def to_json(self) -> dict:
        """A JSON-safe dict; PSNR of exact matches (+inf) is written as null."""
        return {
            "settings": self.settings,
            "horizons": {
                m: {f"{h:g}": s.to_json() for h, s in row.items()} for m, row in self.horizon_table().items()
            },
            "revisit": {m: s.to_json() for m, s in self.revisit_table().items()},
            "drift": {m: _finite(d) for m, d in self.drift_table().items()},
            "paired": {c: {k: v.to_json() for k, v in row.items()} for c, row in self.paired_table().items()},
            "scenes": [s.to_json() for s in self.scenes],
        }

    @classmethod
    def from_json(cls, d: dict) -> WorldsReport:
        """The report `to_json` wrote (the tables are recomputed from the scenes)."""
        return cls(dict(d["settings"]), [SceneResult.from_json(x) for x in d["scenes"]])

    @classmethod
    def load(cls, path) -> WorldsReport:
        return cls.from_json(json.loads(Path(path).read_text()))

    @classmethod
    def merge(cls, reports: list[WorldsReport]) -> WorldsReport:
        """One report from evaluations of disjoint scene sets run with the same settings (e.g. one
        process per seed range): scenes in seed order, tables over all of them. Raises on settings
        that differ (other than the scene seeds) and on a scene that appears twice."""
        if not reports:
            raise ValueError("nothing to merge: pass at least one report")

        def settings(r: WorldsReport) -> dict:  # reports from before a setting existed had its default
            return {k: v for k, v in {**LEGACY_SETTINGS, **r.settings}.items() if k != "scene_seeds"}

        base = settings(reports[0])
        for r in reports[1:]:
            other = settings(r)
            diff = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k))
            if diff:
                raise ValueError(
                    f"reports were made with different settings ({', '.join(diff)}); merge only runs of "
                    "one evaluation split over scene seeds"
                )
        scenes = sorted((s for r in reports for s in r.scenes), key=lambda s: s.scene_seed)
        seeds = [s.scene_seed for s in scenes]
        dup = sorted({x for x in seeds if seeds.count(x) > 1})
        if dup:
            raise ValueError(f"scene seed(s) {dup} appear in more than one report; merge disjoint runs")
        return cls({**LEGACY_SETTINGS, **reports[0].settings, "scene_seeds": seeds}, scenes)

    def save(self, path) -> None:
        Path(path).write_text(dumps_report(self.to_json()))

    def to_markdown(self) -> str:
        table = self.horizon_table()
        hs = sorted({h for row in table.values() for h in row})
        n = len(self.scenes)
        lines = [
            f"PSNR (dB) / SSIM against ground-truth renders, {n} held-out scene{'s' * (n != 1)}, "
            "frames 0 < t <= horizon:",
            "",
            "| method | " + " | ".join(f"{h:g} s" for h in hs) + " |",
            "| --- | " + " | ".join("---" for _ in hs) + " |",
        ]
        for m, row in table.items():
            cells = [f"{_fmt_db(row[h].psnr)} / {row[h].ssim:.3f}" if h in row else "-" for h in hs]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        revisit = self.revisit_table()
        if revisit:
            k = sum(s.ground_truth_revisit is not None for s in self.scenes)
            lines += [
                "",
                f"Revisit consistency (frame on the way back vs on the way out, same pose), {k} scene"
                f"{'s' * (k != 1)}; ground_truth is the ceiling, repeat_first is trivially exact:",
                "",
                "| method | PSNR (dB) | SSIM | pairs |",
                "| --- | --- | --- | --- |",
            ]
            for m, s in revisit.items():
                lines.append(f"| {m} | {_fmt_db(s.psnr)} | {s.ssim:.3f} | {s.count} |")
        drift = self.drift_table()
        if drift:
            lines += [
                "",
                f"Drift: PSNR of the first {DRIFT_SECONDS:g} s minus PSNR of the last {DRIFT_SECONDS:g} s "
                "(dB, smaller is better):",
                "",
                "| method | drift (dB) |",
                "| --- | --- |",
            ]
            lines += [f"| {m} | {_fmt_db(d)} |" for m, d in drift.items()]
        paired = {c: row for c, row in self.paired_table().items() if any(p.n > 1 for p in row.values())}
        if paired:
            lines += [""] + paired_markdown(paired, PAIRED_HEADER)
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Paired:
    """Per-scene differences of two methods (dB, positive where the first is better)."""

    mean: float
    se: float  # standard error of the mean (nan for one scene)
    median: float
    wins: int  # scenes where the first is better
    n: int

    @classmethod
    def of(cls, diffs: list[float]) -> Paired | None:
        d = np.array([x for x in diffs if math.isfinite(x)], dtype=np.float64)
        if len(d) == 0:
            return None
        se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        return cls(float(d.mean()), se, float(np.median(d)), int((d > 0).sum()), len(d))

    def cell(self) -> str:
        return f"{self.mean:+.2f} ± {self.se:.2f}, median {self.median:+.2f}, {self.wins}/{self.n}"

    def to_json(self) -> dict:
        return {
            "mean": self.mean,
            "se": _finite(self.se),
            "median": self.median,
            "wins": self.wins,
            "n": self.n,
        }


def paired_rows(pairs: list[tuple[MethodResult, MethodResult]]) -> dict[str, Paired]:
    """Per horizon ("1 s", ...) and "drift", the differences A − B over (A, B) results of the same scenes,
    positive where A is better (drift: B's minus A's)."""
    rows: dict[str, Paired] = {}
    for h in sorted({h for a, _ in pairs for h in a.horizons}):
        diffs = [
            a.horizons[h].psnr - b.horizons[h].psnr for a, b in pairs if h in a.horizons and h in b.horizons
        ]
        if (got := Paired.of(diffs)) is not None:
            rows[f"{h:g} s"] = got
    diffs = [b.drift - a.drift for a, b in pairs if a.drift is not None and b.drift is not None]
    if (got := Paired.of(diffs)) is not None:
        rows["drift"] = got
    return rows


def compare_reports(
    a: WorldsReport, b: WorldsReport, methods: list[tuple[str, str]] | None = None
) -> dict[str, dict[str, Paired]]:
    """Two evaluations of the same scenes (e.g. two checkpoints, or two refiners behind one stage 1),
    paired per scene: for each (method of A, method of B), "A:m − B:m" -> `paired_rows`. Scenes are
    matched by seed and must have the same path and length in both (and the reports the same frame size
    and rate); by default every method the two reports share except repeat_first (the same in both). Raises
    on reports with no scene in common, on mismatched scenes or frames and on a method a report lacks."""
    for key in ("size", "fps"):  # the same scenes rendered otherwise are other ground truths
        if key in a.settings and key in b.settings and a.settings[key] != b.settings[key]:
            raise ValueError(
                f"the reports were rendered with different {key} ({a.settings[key]} against "
                f"{b.settings[key]}); compare evaluations of the same frames"
            )
    mine = {s.scene_seed: s for s in a.scenes}
    theirs = {s.scene_seed: s for s in b.scenes}
    common = sorted(mine.keys() & theirs.keys())
    if not common:
        raise ValueError("the two reports share no scene seed; compare evaluations of the same scenes")
    for seed in common:
        x, y = mine[seed], theirs[seed]
        if (x.path_kind, x.path_seed, x.frames) != (y.path_kind, y.path_seed, y.frames):
            raise ValueError(
                f"scene {seed} differs between the reports (path {x.path_kind}/{x.path_seed}, {x.frames} "
                f"frames against {y.path_kind}/{y.path_seed}, {y.frames}): compare runs of one evaluation "
                "(same --seconds, --fps, --kinds, --path-seed)"
            )
    if methods is None:
        shared = [m for m in a.methods() if m in b.methods() and m != "repeat_first"]
        methods = [(m, m) for m in shared]
        if not methods:
            raise ValueError("the reports share no method to compare (other than repeat_first)")
    out: dict[str, dict[str, Paired]] = {}
    for ma, mb in methods:
        for name, report, m in (("first", a, ma), ("second", b, mb)):
            if m not in report.methods():
                raise ValueError(
                    f"the {name} report has no method {m!r}; it has {', '.join(report.methods())}"
                )
        rows = paired_rows([(mine[k].methods[ma], theirs[k].methods[mb]) for k in common])
        if rows:
            out[f"A:{ma} − B:{mb}"] = rows
    return out


def paired_markdown(table: dict[str, dict[str, Paired]], header: str) -> list[str]:
    """A markdown table of `paired_rows` results (one row per comparison); empty when there is none."""
    if not table:
        return []
    cols = list(dict.fromkeys(k for row in table.values() for k in row))
    lines = [
        header,
        "",
        "| A − B | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for c, row in table.items():
        lines.append(f"| {c} | " + " | ".join(row[k].cell() if k in row else "-" for k in cols) + " |")
    return lines


def _mean_scores(scores: list[Scores]) -> Scores:
    return Scores(
        float(np.mean([s.psnr for s in scores])),
        float(np.mean([s.ssim for s in scores])),
        sum(s.count for s in scores),
    )


def dumps_report(report: dict) -> str:
    """A report as indented JSON with each list of numbers (the per-frame curves) on one line."""
    lists: list[str] = []

    def inline(o):  # number lists -> placeholders ("\0N\0", which no report string contains)
        if isinstance(o, dict):
            return {k: inline(v) for k, v in o.items()}
        if isinstance(o, list):
            if o and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in o):
                lists.append(json.dumps(o, allow_nan=False))
                return f"\0{len(lists) - 1}\0"
            return [inline(v) for v in o]
        return o

    text = json.dumps(inline(report), indent=2, allow_nan=False)
    return re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: lists[int(m.group(1))], text) + "\n"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _inf_if_none(x) -> float:
    """Inverse of `_finite` for the values this report stores: null stands for +inf (an exact match)."""
    return math.inf if x is None else float(x)


def _fmt_db(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "inf"


# ---- the evaluation loop --------------------------------------------------------------------------


def evaluate_worlds(
    pipe: WorldModelPipeline,
    scene_seeds,
    seconds: float = 10.0,
    size=256,
    fps: float = 16.0,
    kinds=DEFAULT_KINDS,
    horizons=DEFAULT_HORIZONS,
    steps: int | None = None,
    guidance: float | None = None,
    mode: str = "streaming",
    seed: int = 0,
    *,
    context_sigma: float | None = None,
    path_seed: int = 1,
    fov_deg: float = 60.0,
    prompt: str | None = None,
    progress=None,
    sheets=None,
    refiner=None,
    ablation: bool = True,
) -> WorldsReport:
    """Evaluate `pipe` on held-out scenes (see the module docstring).

    Args:
        scene_seeds: scene seeds, e.g. range(HELD_OUT_SEED_OFFSET, HELD_OUT_SEED_OFFSET + 20).
        seconds: clip length, snapped down to 8k + 1 frames at `fps` (1 s at 16 fps -> 17 frames).
        size: N or (H, W) of the renders and the generated frames.
        kinds: path kinds, cycled over the scenes; horizons: seconds (those past the clip are skipped).
        steps, guidance, mode, seed, context_sigma: generation settings; None keeps the model's own
            (its generation.json: steps or a student's timesteps, shift, guidance, chunking, context
            noise), as `sanawm generate` would use them.
        path_seed: the path seed (training clips use 0). prompt: None = the scene's caption.
        progress: optional callable(message: str), called once per scene.
        sheets: a folder for one comparison sheet per scene (`comparison_sheet`: truth, model and
            no_camera frames side by side at 8 times), or None.
        refiner: a stage-2 refiner (e.g. `pipe.refiner`): adds the method "refined" (same seed as "model").
        ablation: False skips the camera-removed baseline ("no_camera"), half the generation time, e.g.
            to compare two samplers of one network.
    """
    h, w = parse_size(size)
    seeds = [int(s) for s in scene_seeds]
    if not seeds:
        raise ValueError("no scene seeds given; pass e.g. range(1_000_000, 1_000_020)")
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("no path kinds given; pass e.g. ('walk', 'revisit')")
    cfg = pipe.generation_config(
        seconds=seconds, fps=fps, height=h, width=w, mode=mode, seed=seed, fov_deg=fov_deg,
        steps=steps, guidance=guidance, context_sigma=context_sigma,
    )  # fmt: skip
    if steps is not None:  # an explicit step count replaces a student's few-step list
        cfg = replace(cfg, timesteps=None)
    n = cfg.frames_wanted()
    if n < 9:
        raise ValueError(f"--seconds {seconds} at {fps:g} fps gives {n} frame(s); need at least 8 / fps s")
    clip_seconds = (n - 1) / fps
    results = []
    for i, scene_seed in enumerate(seeds):
        timings = {}
        t0 = time.perf_counter()
        scene = build_scene(scene_seed)
        path = _plan(scene, path_seed, kinds[i % len(kinds)], kinds, clip_seconds, fps, (h, w), fov_deg)
        traj = path.trajectory
        truth, _ = render_trajectory(scene, traj)
        timings["render"] = time.perf_counter() - t0
        if len(truth) != n:
            raise RuntimeError(f"scene {scene_seed}: rendered {len(truth)} frames, expected {n}")
        first = Image.fromarray(truth[0])
        text = caption_for(scene) if prompt is None else prompt

        t0 = time.perf_counter()
        result = pipe.generate(first, text, trajectory=traj, config=cfg, refiner=refiner)
        if refiner is None:
            timings["model"] = time.perf_counter() - t0
            frames = {"model": result.frames}
        else:  # one rollout serves both: stage 2 runs behind the very stage-1 rollout "model" scores
            timings["refined"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            frames = {"model": pipe.decode(result.stage1_latents, cfg)}
            timings["model_decode"] = time.perf_counter() - t0
        _check_cameras(result.trajectory, traj, scene_seed)
        pairs = revisit_pairs(traj.c2w)
        if ablation:
            t0 = time.perf_counter()
            no_cam = pipe.generate(first, text, trajectory=traj, config=cfg, drop_camera=True)
            timings["no_camera"] = time.perf_counter() - t0
            _check_cameras(no_cam.trajectory, traj, scene_seed)
            frames["no_camera"] = no_cam.frames
        frames["repeat_first"] = np.repeat(truth[:1], n, 0)
        if refiner is not None:
            frames["refined"] = result.frames
        methods = {m: score_method(f, truth, fps, horizons, pairs) for m, f in frames.items()}
        if sheets is not None:
            rows = {"ground truth": truth, "model": frames["model"]}
            if ablation:
                rows["no camera"] = frames["no_camera"]
            if refiner is not None:
                rows["refined"] = frames["refined"]
            title = f"scene {scene_seed} ({scene.kind}, {path.kind} path), held out"
            comparison_sheet(rows, fps, Path(sheets) / f"scene_{scene_seed}.png", title=title)
        gt_revisit = revisit_scores(truth, pairs)
        results.append(
            SceneResult(
                scene_seed, scene.kind, path.kind, path_seed, n, len(pairs), methods, gt_revisit, timings
            )
        )
        if progress is not None:
            psnr_h = methods["model"].horizons
            last = psnr_h[max(psnr_h)] if psnr_h else None
            progress(
                f"scene {scene_seed} ({scene.kind}, {path.kind}): model "
                f"{_fmt_db(last.psnr) if last else '-'} dB over {clip_seconds:g} s"
            )
    settings = {
        "scene_seeds": seeds,
        "seconds": clip_seconds,
        "frames": n,
        "fps": fps,
        "size": [h, w],
        "kinds": list(kinds),
        "horizons": [float(x) for x in horizons],
        "steps": cfg.steps if cfg.timesteps is None else None,
        "timesteps": list(cfg.timesteps) if cfg.timesteps is not None else None,
        "shift": cfg.shift,
        "guidance": cfg.guidance,
        "network": "student" if getattr(pipe, "is_student", False) else "teacher",
        "mode": mode,
        "context_sigma": cfg.context_sigma,
        "seed": seed,
        "path_seed": path_seed,
        "fov_deg": fov_deg,
        "prompt": "scene caption" if prompt is None else prompt,
        "ablation": ablation,
        "refiner": None if refiner is None else type(refiner).__name__,
    }
    return WorldsReport(settings, results)


def comparison_sheet(
    rows: dict[str, np.ndarray], fps: float, path, columns: int = 8, title: str = ""
) -> Path:
    """One row per method (name -> (F, H, W, 3) uint8 frames, the same F), `columns` evenly spaced
    times from the first frame to the last, labelled; written as PNG to `path`."""
    from PIL import ImageDraw

    n = len(next(iter(rows.values())))
    idx = np.unique(np.linspace(0, n - 1, columns).round().astype(int))
    h, w = next(iter(rows.values())).shape[1:3]
    label_w, top = 110, 22 + (16 if title else 0)
    sheet = Image.new("RGB", (label_w + len(idx) * (w + 2), top + len(rows) * (h + 2)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill="black")
    for j, i in enumerate(idx):
        draw.text((label_w + j * (w + 2) + 4, top - 16), f"{i / fps:.1f} s", fill="black")
    for r, (name, frames) in enumerate(rows.items()):
        y = top + r * (h + 2)
        draw.text((4, y + h // 2 - 6), name, fill="black")
        for j, i in enumerate(idx):
            sheet.paste(Image.fromarray(frames[i]), (label_w + j * (w + 2), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def plot_psnr_over_time(report: dict, path, title: str = "") -> Path:
    """PSNR against time, one line per method: per frame, the PSNR of the mean squared error over the
    report's scenes (as the horizon windows are scored; an exact frame counts as error 0, not +inf).
    Frame 0, the given image, is left out. `report` is `WorldsReport.to_json()` or its JSON content."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fps = report["settings"]["fps"]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    for m in [m for m in METHODS if all(m in s["methods"] for s in report["scenes"])]:
        curves = [s["methods"][m]["psnr_per_frame"] for s in report["scenes"]]
        mse = np.array([[0.0 if v is None else 255.0**2 / 10 ** (v / 10) for v in c] for c in curves])
        t = np.arange(mse.shape[1]) / fps
        with np.errstate(divide="ignore"):
            db = 10 * np.log10(255.0**2 / mse[:, 1:].mean(0))
        ax.plot(t[1:], db, label=m.replace("_", " "), lw=1.2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PSNR vs ground truth (dB)")
    ax.set_title(title or f"mean over {len(report['scenes'])} held-out scenes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _plan(scene, path_seed, kind, kinds, seconds, fps, size, fov_deg):
    """The path of `kind`, else the first other kind with a collision-free path."""
    errors = []
    for k in [kind] + [k for k in kinds if k != kind]:
        try:
            return plan_path(scene, path_seed, k, seconds, fps, size=size, fov_deg=fov_deg)
        except RuntimeError as err:
            errors.append(str(err))
    raise RuntimeError(f"scene {scene.seed}: no path of any kind in {list(kinds)}: {errors[-1]}")


def _check_cameras(used, truth, scene_seed: int) -> None:
    """The cameras handed to the network must be the render's: same size, intrinsics and poses."""
    if used.image_size != truth.image_size or not np.allclose(used.intrinsics, truth.intrinsics):
        raise RuntimeError(
            f"scene {scene_seed}: the network would see intrinsics {used.intrinsics[0]} at {used.image_size} "
            f"but the frames were rendered with {truth.intrinsics[0]} at {truth.image_size}"
        )
    if not np.allclose(used.c2w, truth.c2w):
        raise RuntimeError(f"scene {scene_seed}: the generated path differs from the rendered one")
