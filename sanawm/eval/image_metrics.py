"""Per-frame image fidelity: PSNR and SSIM (Wang et al. 2004, Gaussian window), for frames or batches.

Both take two images or two batches of the same shape, uint8 or float, laid out (H, W, C) or
(N, H, W, C) (C = 3 for RGB; any C works), and a `data_range` (255 for uint8 frames, 1.0 for [0, 1]
floats). They return one value per frame: a float for (H, W, C) inputs, an (N,) float64 array for batches.

PSNR = 10 · log10(data_range² / MSE), MSE over every pixel and channel of a frame; +inf when the frames
are identical.

SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to
structural similarity"), per channel, with local statistics under an 11 × 11 Gaussian window (σ = 1.5,
normalised to sum 1) at every position where the window fits inside the image ("valid", as in the
authors' MATLAB code):

    SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (0.01 · data_range)², C2 = (0.03 · data_range)²,

where μ, σ², σxy are Gaussian-weighted means, variances and covariance (σx² = E[x²] − μx²). The frame's
SSIM is the mean of the map over positions and channels: 1.0 for identical frames, symmetric in x, y.
"""

from __future__ import annotations

import numpy as np
import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_arrays(a, b) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two (H, W, C) / (N, H, W, C) arrays, checked -> (N, H, W, C) arrays and whether one frame came in."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (3, 4):
        raise ValueError(f"pass (H, W, C) frames or (N, H, W, C) batches, got shape {a.shape}")
    single = a.ndim == 3
    return (a[None], b[None], True) if single else (a, b, False)


def _as_batch(a, b) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Two (H, W, C) / (N, H, W, C) arrays -> float64 (N, C, H, W) tensors, and whether one frame came in."""
    a, b, single = _as_arrays(a, b)
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    return ta.permute(0, 3, 1, 2), tb.permute(0, 3, 1, 2), single


def _check_range(data_range: float) -> float:
    if not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(
            f"data_range must be a positive number (255 for uint8, 1.0 for [0, 1]), got {data_range}"
        )
    return float(data_range)


def _per_frame(values: torch.Tensor, single: bool):
    out = values.numpy()
    return float(out[0]) if single else out


def psnr(a, b, data_range: float = 255.0):
    """Peak signal-to-noise ratio in dB per frame, 10·log10(data_range² / MSE); +inf for identical frames.

    a, b: (H, W, C) or (N, H, W, C), uint8 or float. Returns a float or an (N,) float64 array.
    """
    r = _check_range(data_range)
    x, y, single = _as_batch(a, b)
    mse = (x - y).pow(2).flatten(1).mean(1)
    values = 10.0 * torch.log10(r * r / mse)  # mse == 0 -> r² / 0 = +inf -> +inf dB
    return _per_frame(values, single)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size, size) float64 Gaussian weights summing to 1, centred on the middle pixel."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a, b, data_range: float = 255.0, device: str | torch.device | None = None):
    """Structural similarity per frame (Gaussian 11×11 window, σ = 1.5, valid positions, channel mean).

    a, b: (H, W, C) or (N, H, W, C), uint8 or float, at least 11 × 11 pixels. Returns a float or an
    (N,) float64 array in [-1, 1]; 1.0 for identical frames. `device`: where to compute (default: CUDA
    when available, else the CPU); the result does not depend on it beyond float rounding (~1e-7).
    """
    r = _check_range(data_range)
    a, b, single = _as_arrays(a, b)
    h, w = a.shape[1:3]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its Gaussian window), "
            f"got {h}x{w}; compare larger frames"
        )
    dev = torch.device(device) if device is not None else _default_device()
    # A block of frames at a time: memory stays bounded (a few MB a frame of working set).
    step = 64 if dev.type == "cuda" else 8
    values = torch.cat(
        [
            _ssim_frames(*(t.to(dev) for t in _as_batch(a[i : i + step], b[i : i + step])[:2]), r).cpu()
            for i in range(0, len(a), step)
        ]
    )
    return _per_frame(values, single)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _filter_valid(x: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate x with the 1-D window g along `dim`, valid positions only, as len(g) shifted
    multiply-adds: vectorised elementwise work (torch's depthwise CPU convolution is ~10x slower)."""
    n = x.shape[dim] - len(g) + 1
    out = x.narrow(dim, 0, n) * g[0]
    for t in range(1, len(g)):
        out.add_(x.narrow(dim, t, n), alpha=float(g[t]))
    return out


def _ssim_frames(x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    """SSIM of float64 frames (n, C, H, W) -> (n,).

    The 2-D Gaussian is the outer product of a 1-D one: filter columns, then rows (22 taps, not 121),
    all five statistics at once. The products are float64; the filtering runs in float32 on values
    centred on each frame's mean, which keeps the result within ~1e-6 relative of an all-float64
    computation.
    """
    c = x.shape[1]
    g = gaussian_window()[SSIM_WINDOW // 2]
    g = (g / g.sum()).tolist()
    mean_x = x.mean(dim=(1, 2, 3), keepdim=True)
    mean_y = y.mean(dim=(1, 2, 3), keepdim=True)
    xc, yc = x - mean_x, y - mean_y
    stats = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1).float()
    stats = _filter_valid(_filter_valid(stats, g, 2), g, 3).double()
    mxc, myc, exx, eyy, exy = stats.split(c, dim=1)
    vx = exx - mxc * mxc
    vy = eyy - myc * myc
    cxy = exy - mxc * myc
    mx, my = mxc + mean_x, myc + mean_y
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim_map.flatten(1).mean(1)
