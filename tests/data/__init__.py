"""Small builders shared by the data tests: smooth synthetic frames and a matching trajectory."""

from __future__ import annotations

import numpy as np

from sanawm.cameras import Trajectory

F, H, W, FPS = 12, 64, 96, 16.0
K = (70.0, 72.0, 47.25, 31.5)  # fx, fy, cx, cy in pixels of (H, W)


def smooth_frames(num_frames: int = F, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """(F, H, W, 3) uint8: slowly varying colour waves that move over time (codec friendly)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ph = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
    frames = [
        np.stack(
            [
                128 + 60 * np.sin(x / 11 + t / 5 + ph[0]),
                128 + 60 * np.cos(y / 9 - t / 6 + ph[1]),
                128 + 50 * np.sin((x + y) / 15 + t / 4 + ph[2]),
            ],
            axis=-1,
        )
        for t in range(num_frames)
    ]
    return np.stack(frames).round().clip(0, 255).astype(np.uint8)


def moving_trajectory(num_frames: int = F, size: tuple[int, int] = (H, W), fps: float = FPS) -> Trajectory:
    """Forward motion with a slow yaw (OpenCV axes), intrinsics K, timestamps slightly off i / fps."""
    yaw = np.linspace(0.0, 0.4, num_frames)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = (
        np.cos(yaw),
        np.sin(yaw),
        -np.sin(yaw),
        np.cos(yaw),
    )
    c2w[:, :3, 3] = np.stack([0.1 * np.sin(yaw), 0.0 * yaw, np.linspace(0.0, 1.3, num_frames)], -1)
    times = np.arange(num_frames) / fps + 1e-3 * np.sin(np.arange(num_frames))
    return Trajectory(c2w=c2w, intrinsics=np.array(K), image_size=size, fps=fps, timestamps=times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))
