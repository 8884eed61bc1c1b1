"""Metric depth estimators for the `estimator` scale mode.

Any object with `predict(frames) -> depth` works (`DepthEstimator`): frames (F, H, W, 3) uint8 RGB in,
(F, H, W) metres out (inf or 0 where there is no depth). `TransformersDepthEstimator` wraps a
Hugging Face depth-estimation model (e.g. a metric Depth Anything V2 checkpoint) from a LOCAL folder:
nothing is ever downloaded; a folder without config.json and preprocessor_config.json is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class DepthEstimator(Protocol):
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """(F, H, W, 3) uint8 RGB -> (F, H, W) float32 metric depth in metres."""
        ...


class TransformersDepthEstimator:
    """A transformers `AutoModelForDepthEstimation` from a local folder, run in batches.

    The model must predict metric depth (metres); relative-depth models (disparity) give meaningless
    scales. Outputs are resized to the input frames bilinearly.
    """

    def __init__(self, folder, device: str = "cpu", batch_size: int = 4):
        folder = Path(folder)
        missing = [n for n in ("config.json", "preprocessor_config.json") if not (folder / n).is_file()]
        if not folder.is_dir() or missing:
            raise FileNotFoundError(
                f"{folder} is not a local transformers depth model folder (missing "
                f"{', '.join(missing) or 'the folder'}); "
                "save one with model.save_pretrained(folder) and processor.save_pretrained(folder) first "
                "(sanawm never downloads models)"
            )
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        self.model = (
            AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True).to(device).eval()
        )
        self.device, self.batch_size = device, int(batch_size)

    @torch.no_grad()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        f, h, w, _ = frames.shape
        out = np.empty((f, h, w), np.float32)
        for start in range(0, f, self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            pred = self.model(**inputs).predicted_depth  # (B, h', w')
            pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(h, w), mode="bilinear")
            out[start : start + len(batch)] = pred[:, 0].cpu().numpy()
        return out
