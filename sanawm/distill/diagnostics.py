"""Camera sensitivity of a network during distillation: does the student still use its camera?

`camera_gap` shows a network a fixed batch the way the streaming sampler does (clean context committed
through the stream state, the current chunk noised to one of the student's σ; chunk j at σ_{j mod S})
three times: with the camera, without it (camera and Plücker None, in every call and commit, as
`eval worlds`' no_camera ablation), and with another sample's camera (the batch rolled by one). It
returns the relative change of the x₀ predictions over the output frames (frame 0, the image, is not
one):

    removed = ‖x̂₀(no camera) − x̂₀(camera)‖ / ‖x̂₀(camera)‖
    swapped = ‖x̂₀(other camera) − x̂₀(camera)‖ / ‖x̂₀(camera)‖   (None for a batch of one)

`removed` also moves when a network merely reacts to the camera being present (a learned bias of the
camera branches); `swapped` needs the camera's content. A student that keeps the camera keeps both near
the teacher's numbers on the same batch (`CameraProbe`, logged as camera_gap_{student,teacher} and
camera_swap_gap_{student,teacher} in metrics.jsonl).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..sampling import ChunkSession, Conditions, Guidance


@torch.no_grad()
def probe_x0(
    model,
    clean: torch.Tensor,
    noise: torch.Tensor,
    cond: Conditions,
    sigmas: Sequence[float],
    chunks: Sequence[int],
    kv_window: int | None = 2,
    bidirectional: bool = False,
) -> torch.Tensor:
    """x̂₀ (B, C, T − 1, H, W) of frames 1.. of clean (B, C, T, H, W), chunk j noised to
    σ = sigmas[j mod len(sigmas)] with `noise`: chunk by chunk after the clean chunks < j (committed
    through the stream state, as at inference), or with `bidirectional` in one forward over the whole
    noised clip (a bidirectional teacher's own mode)."""
    levels = torch.cat(
        [torch.full((size,), float(sigmas[j % len(sigmas)])) for j, size in enumerate(chunks)]
    ).to(clean.device)
    levels[0] = 0.0  # the image frame stays clean
    sig = levels[None, None, :, None, None]
    x_sigma = (1 - sig) * clean.float() + sig * noise.float()
    if bidirectional:
        t = (levels * 1000.0)[None].expand(clean.shape[0], -1)
        v = model(x_sigma, t, cond.text, cond.text_mask, cond.camera, cond.plucker).float()
        return (x_sigma - sig * v)[:, :, 1:]
    session = ChunkSession(model, [cond], Guidance(1.0), kv_window, streaming=True)
    out, start = [], 0
    for size in chunks:
        sl = slice(start, start + size)
        t = (levels[sl] * 1000.0)[None].expand(clean.shape[0], -1)
        v = session.velocity(x_sigma[:, :, sl], t).float()
        out.append(x_sigma[:, :, sl] - sig[:, :, sl] * v)
        session.commit(clean[:, :, sl].float())
        start += size
    return torch.cat(out, 2)[:, :, 1:]


def camera_gap(
    model,
    clean: torch.Tensor,
    noise: torch.Tensor,
    cond: Conditions,
    sigmas: Sequence[float],
    chunks: Sequence[int],
    kv_window: int | None = 2,
    bidirectional: bool = False,
) -> dict[str, float | None]:
    """{'removed', 'swapped'}: the relative change of `probe_x0` without the camera and with the
    batch's cameras rolled by one sample (None when B = 1). `cond` must carry a camera."""
    if cond.camera is None:
        raise ValueError("camera_gap needs conditions with a camera (data.camera: true)")
    if sum(chunks) != clean.shape[2]:
        raise ValueError(f"chunks {list(chunks)} must sum to the {clean.shape[2]} latent frames")

    def x0(c: Conditions) -> torch.Tensor:
        return probe_x0(model, clean, noise, c, sigmas, chunks, kv_window, bidirectional)

    ref = x0(cond)
    scale = ref.norm().clamp_min(1e-12)
    removed = x0(replace(cond, camera=None, plucker=None))
    out: dict[str, float | None] = {"removed": ((removed - ref).norm() / scale).item(), "swapped": None}
    if clean.shape[0] > 1:
        other = replace(
            cond,
            camera=cond.camera.roll(1, 0),
            plucker=None if cond.plucker is None else cond.plucker.roll(1, 0),
        )
        swapped = x0(other)
        out["swapped"] = ((swapped - ref).norm() / scale).item()
    return out


@dataclass
class CameraProbe:
    """A fixed batch (clean latents, noise, conditions) and the teacher's gaps on it, computed once (the
    teacher is frozen); `metrics(student)` gives the row entries of both."""

    clean: torch.Tensor
    noise: torch.Tensor
    cond: Conditions
    sigmas: tuple[float, ...]
    chunks: tuple[int, ...]
    kv_window: int | None
    teacher: dict[str, float | None]

    @classmethod
    def build(
        cls, teacher, clean, noise, cond, sigmas, chunks, kv_window, teacher_bidirectional: bool = False
    ) -> CameraProbe:
        """`teacher_bidirectional`: the teacher's gaps from its own (bidirectional) forward; the
        student's are always chunk by chunk, as it samples."""
        sigmas, chunks = tuple(float(s) for s in sigmas), tuple(int(c) for c in chunks)
        gaps = camera_gap(teacher, clean, noise, cond, sigmas, chunks, kv_window, teacher_bidirectional)
        return cls(clean, noise, cond, sigmas, chunks, kv_window, gaps)

    def metrics(self, student) -> dict[str, float]:
        was_training = student.training
        student.eval()
        try:
            gaps = camera_gap(
                student, self.clean, self.noise, self.cond, self.sigmas, self.chunks, self.kv_window
            )
        finally:
            student.train(was_training)
        row = {"camera_gap_student": gaps["removed"], "camera_gap_teacher": self.teacher["removed"]}
        if gaps["swapped"] is not None:
            row["camera_swap_gap_student"] = gaps["swapped"]
            row["camera_swap_gap_teacher"] = self.teacher["swapped"]
        return row


def probe_summary(metrics) -> str:
    """The first and last camera-probe rows of a run's metrics.jsonl, one line (recipes log it):
    `python -m sanawm.distill.diagnostics RUN/metrics.jsonl`."""
    rows = [r for r in map(json.loads, Path(metrics).read_text().splitlines()) if "camera_gap_student" in r]
    if not rows:
        return "no camera probe logged (camera_gap.every 0, or no camera)"
    keys = [k for k in rows[0] if k.startswith("camera")]
    picked = rows[:1] + rows[-1:] if len(rows) > 1 else rows
    return "; ".join(f"step {r['step']}: " + ", ".join(f"{k} {r[k]:.4f}" for k in keys) for r in picked)


if __name__ == "__main__":
    print(probe_summary(sys.argv[1]))


__all__ = ["CameraProbe", "camera_gap", "probe_summary", "probe_x0"]
