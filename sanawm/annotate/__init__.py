"""Pose annotation: camera poses and intrinsics for any video (SPEC §7), on pycolmap.

    from sanawm.annotate import annotate_frames, annotate_source
    ann = annotate_frames(frames, fps=10)                 # Annotation: trajectory, confidence, verdict
    report = annotate_source("drive.mp4", "out/drive")    # the same, written as a sanawm clip + report

| file         | job                                                                        |
| ------------ | -------------------------------------------------------------------------- |
| frames.py    | video or frame folder → sampled frames (natural order, stride / fps)       |
| sfm.py       | pycolmap: extraction, sequential + loop matching, mapping, bundle adjustment |
| selfcal.py   | focal length from fundamental matrices, before mapping                     |
| loops.py     | loop-closure candidates (bag of words learnt on the clip)                  |
| complete.py  | interpolate frames SfM missed; per-frame confidence                        |
| scale.py     | scale modes: relative, ground-truth poses / depth, depth estimator         |
| depth.py     | the metric depth estimator interface (transformers, local folders only)    |
| filters.py   | field of view, aspect, scale consistency, registration, cuts, motion       |
| pipeline.py  | `annotate_frames`: all of the above for frames in memory → `Annotation`    |
| writer.py    | `annotate_source`: a file or folder → clip folder, arrays, plot, report    |
| batch.py     | `annotate_batch`: a folder of videos with workers, resumable               |

pycolmap, OpenCV and PySceneDetect come with `pip install 'sanawm[annotate]'`; they are imported
when first used, so `import sanawm.annotate` works without them.
"""

from .batch import annotate_batch, batch_items
from .depth import DepthEstimator, TransformersDepthEstimator
from .filters import Check, FilterLimits
from .frames import FrameSet, load_frames
from .pipeline import AnnotateOptions, Annotation, annotate_frames
from .scale import SCALE_MODES
from .sfm import MAPPERS, SfmOptions, SfmResult, run_sfm
from .writer import annotate_source

__all__ = [
    "MAPPERS",
    "SCALE_MODES",
    "AnnotateOptions",
    "Annotation",
    "Check",
    "DepthEstimator",
    "FilterLimits",
    "FrameSet",
    "SfmOptions",
    "SfmResult",
    "TransformersDepthEstimator",
    "annotate_batch",
    "annotate_frames",
    "annotate_source",
    "batch_items",
    "load_frames",
    "run_sfm",
]
