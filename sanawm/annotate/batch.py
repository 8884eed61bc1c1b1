"""Annotate a folder of videos (and/or sub-folders of frames): workers, progress bar, resumable.

Every item runs in its own process, so a crash (even a segfault in a native library) or a time-out
costs that item only: it gets a report with verdict "failed" and the batch goes on. An item whose
OUT/<name>/report.json exists is skipped on the next run (failed ones too, unless retry_failed).
OUT/batch.json sums up the verdicts, one entry per item.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from ..cameras.formats.colmap import _natural_key
from .frames import VIDEO_SUFFIXES, image_files
from .pipeline import AnnotateOptions
from .writer import REPORT, annotate_source, failure_report

SUMMARY = "batch.json"
_POLL_S = 0.2


def batch_items(folder) -> list[Path]:
    """Video files and sub-folders holding images in `folder`, in natural order."""
    folder = Path(folder)
    items = [
        p for p in folder.iterdir()
        if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and image_files(p))
    ]  # fmt: skip
    return sorted(items, key=lambda p: _natural_key(p.name))


def _item_name(item: Path) -> str:
    return item.stem if item.is_file() else item.name


def _read_report(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _worker(item: str, out: str, kwargs: dict) -> None:
    try:
        annotate_source(item, out, overwrite=True, **kwargs)
    except Exception as err:  # one clip's bad luck must not escape into the batch
        failure_report(Path(out), item, f"{type(err).__name__}: {err}")


def annotate_batch(
    folder,
    out_root,
    *,
    workers: int = 1,
    retry_failed: bool = False,
    timeout_s: float | None = None,
    progress: bool = True,
    options: AnnotateOptions | None = None,
    **kwargs,
) -> dict:
    """Annotate every item of `folder` into out_root/<name>/ (see module docstring).

    Args:
        workers: items annotated at once; CPU threads are shared out between them.
        retry_failed: run items again whose last report says "failed".
        timeout_s: per-item limit; an item over it is stopped and marked failed.
        options, kwargs: passed to `annotate_source` (stride, fps, max_frames, intrinsics, ...).

    Returns:
        The summary written to out_root/batch.json: counts per verdict and one entry per item.
    """
    folder, out_root = Path(folder), Path(out_root)
    if not folder.is_dir():
        raise FileNotFoundError(f"batch input {folder} is not a folder")
    items = batch_items(folder)
    if not items:
        raise ValueError(
            f"{folder} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no sub-folders of frames"
        )
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    opts = options or AnnotateOptions()
    if opts.sfm.threads == 0:
        opts = replace(opts, sfm=replace(opts.sfm, threads=max(1, (os.cpu_count() or 1) // workers)))
    out_root.mkdir(parents=True, exist_ok=True)
    names = [_item_name(p) for p in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two items of {folder} are both named {dup!r} (e.g. a.mp4 and a.mov); rename one")

    def done(name: str) -> bool:
        report = _read_report(out_root / name / REPORT)
        return report is not None and not (retry_failed and report.get("verdict") == "failed")

    todo = [(p, n) for p, n in zip(items, names, strict=True) if not done(n)]
    # spawn, not fork: a forked worker inherits the parent's library thread pools without their threads
    # (PyAV 18.1.1's swscale slice threads, once the parent has decoded a frame) and can hang for ever
    ctx = mp.get_context("spawn")
    running: dict[str, tuple[mp.Process, float, Path]] = {}
    bar = tqdm(
        total=len(items), initial=len(items) - len(todo), desc="annotate", unit="clip", disable=not progress
    )
    queue = list(todo)
    while queue or running:
        while queue and len(running) < workers:
            item, name = queue.pop(0)
            proc = ctx.Process(
                target=_worker, args=(str(item), str(out_root / name), {**kwargs, "options": opts})
            )
            proc.start()
            running[name] = (proc, time.monotonic(), item)
        time.sleep(_POLL_S)
        for name, (proc, started, item) in list(running.items()):
            late = timeout_s is not None and time.monotonic() - started > timeout_s
            if proc.is_alive() and not late:
                continue
            if late and proc.is_alive():
                proc.terminate()
                proc.join(5)
                failure_report(out_root / name, str(item), f"timed out after {timeout_s:g} s")
            proc.join()
            if _read_report(out_root / name / REPORT) is None:
                failure_report(
                    out_root / name, str(item), f"the worker process died (exit code {proc.exitcode})"
                )
            del running[name]
            bar.update(1)
            bar.set_postfix_str(f"{name}: {_read_report(out_root / name / REPORT)['verdict']}")
    bar.close()

    entries = []
    for item, name in zip(items, names, strict=True):
        report = _read_report(out_root / name / REPORT) or {"verdict": "failed", "reasons": ["no report"]}
        entries.append({"name": name, "source": str(item), "verdict": report.get("verdict"),
                        "reasons": report.get("reasons", [])})  # fmt: skip
    counts = {v: sum(e["verdict"] == v for e in entries) for v in ("accepted", "rejected", "failed")}
    summary = {"input": str(folder), "items": len(entries), **counts, "clips": entries}
    (out_root / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary
