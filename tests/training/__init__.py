"""Training tests. Shared settings: the tiny-smoke preset shrunk to a 2 x 2 latent grid and 5 latent
frames (chunks (2, 3)), so a step takes a fraction of a second on one CPU thread."""

from __future__ import annotations

import json
from pathlib import Path

FAST = (
    "--data.size=64,64",
    "--data.latent_frames=5",
    "--flow.first_chunk=2",
    "--run.progress=false",
    "--run.tensorboard=false",
    "--run.device=cpu",
)


def read_metrics(out_dir: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines() if line]
