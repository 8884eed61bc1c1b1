"""`manifest.jsonl`: the index of the clip folders under a dataset root, one JSON object a line.

    {"path": "scenes/000017", "num_frames": 961, "fps": 16.0, "size": [704, 1280],
     "caption": "...", "source": "...", "scene_seed": 17}

`path` is the clip folder relative to the root, with "/" separators. Lines are sorted by path, so the
same folders always give the same file. Hidden folders (names starting with ".", such as the temporary
folders of an interrupted `write_clip`) are not scanned.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .clip import META, read_clip

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class ManifestEntry:
    """One clip of a dataset; `path` is relative to the dataset root."""

    path: str
    num_frames: int
    fps: float
    size: tuple[int, int]
    caption: str
    source: str
    scene_seed: int | None

    def to_json(self) -> dict:
        return {**asdict(self), "size": list(self.size)}


def _clip_folders(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if META in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []  # clips do not nest
    return found


def write_manifest(root) -> Path:
    """Scan `root` for clip folders and write `root/manifest.jsonl` (replacing it atomically).

    Folders with a meta.json that `read_clip` rejects are skipped with a warning naming them.

    Returns:
        The manifest path.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    entries, rejected = [], []
    for folder in _clip_folders(root):
        try:
            clip = read_clip(folder)
        except (FileNotFoundError, ValueError) as err:
            rejected.append(str(err))
            continue
        m = clip.meta
        rel = folder.relative_to(root).as_posix()
        entries.append(ManifestEntry(rel, m.num_frames, m.fps, m.size, m.caption, m.source, m.scene_seed))
    if rejected:
        shown = "\n  ".join(rejected[:3])
        more = f"\n  ... and {len(rejected) - 3} more" if len(rejected) > 3 else ""
        warnings.warn(
            f"write_manifest({str(root)!r}) skipped {len(rejected)} broken clip folder(s):\n  {shown}{more}",
            stacklevel=2,
        )
    entries.sort(key=lambda e: e.path)
    path = root / MANIFEST
    tmp = root / f".{MANIFEST}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for e in entries:
                f.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_manifest(root) -> list[ManifestEntry]:
    """The entries of `root/manifest.jsonl`, in file order (sorted by path when written by write_manifest)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset root {root} has no {MANIFEST}; create it with sanawm.data.write_manifest({str(root)!r})"
        )
    fix = f"regenerate it with sanawm.data.write_manifest({str(root)!r})"
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            entry = ManifestEntry(
                path=str(doc["path"]),
                num_frames=int(doc["num_frames"]),
                fps=float(doc["fps"]),
                size=(int(doc["size"][0]), int(doc["size"][1])),
                caption=str(doc.get("caption", "")),
                source=str(doc.get("source", "")),
                scene_seed=None if doc.get("scene_seed") is None else int(doc["scene_seed"]),
            )
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"{path} line {lineno} is not a valid manifest entry ({err!r}); {fix}") from None
        entries.append(entry)
    return entries


__all__ = ["MANIFEST", "ManifestEntry", "read_manifest", "write_manifest"]
