"""Training samples and their order over ranks and steps.

Every sample of a run has a global position k = 0, 1, 2, … (step s of a global batch G holds positions
s·G … s·G + G − 1; rank r of W takes the r-th contiguous slice of G / W). A sample is a pure function of
(run seed, k): its dataset item (through a seeded per-epoch permutation for finite datasets) and its
noise ε. So the global batch does not depend on the number of ranks, and resuming needs only the
position of the next sample.

Sources (`DataSection.source`):
- 'synthetic': `SyntheticClips`, deterministic random tensors shaped like real training samples, for
  smoke tests and CI. Not video and not VAE latents.
- 'clips': `ClipSamples`, windows of a `sanawm.data.ClipDataset` with their camera inputs (built in the
  loader workers); `ClipEncoder` turns each batch's video into VAE latents and its captions into text
  embeddings on the trainer's device.
- 'latents': `sanawm.training.cache.LatentCache`, a folder written once by `sanawm cache-latents`
  (normalised VAE latents, camera / Plücker inputs and text embeddings); training reads no pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..cameras import latent_camera_inputs
from ..model.config import ModelConfig
from ..vae import load_vae
from .config import DataSection


class SyntheticClips(Dataset):
    """Item i: a deterministic function of (seed, i); unbounded (any i ≥ 0 is valid).

    latents (C, T, H, W): a smooth random field that scrolls one latent column per frame, plus a little
        noise, so later frames are predictable from the clean first frame and a loss can go down.
    text (L, D) random embeddings with text_mask (L,) bool, the first 1..L tokens valid.
    camera (T, 20), plucker (48, T, H, W): `sanawm.cameras.latent_camera_inputs` of a seeded smooth
        trajectory (forward / sideways motion with yaw and pitch) over 8 (T − 1) + 1 raw frames, with a
        random field of view in [50°, 90°].
    """

    def __init__(
        self,
        latent_channels: int,
        latent_frames: int,
        size: tuple[int, int],
        text_tokens: int,
        text_channels: int,
        seed: int = 0,
    ) -> None:
        self.channels, self.frames, self.size = latent_channels, latent_frames, tuple(size)
        self.text_tokens, self.text_channels, self.seed = text_tokens, text_channels, seed

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            raise IndexError(f"synthetic sample index must be ≥ 0, got {index}")
        g = torch.Generator().manual_seed(derive_seed(self.seed, index, 1))
        C, T = self.channels, self.frames
        H, W = self.size[0] // 32, self.size[1] // 32
        coarse = torch.randn(C, 1, max(1, H // 2), max(1, W // 2), generator=g)
        base = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
        frames = torch.cat([base.roll(t, dims=-1) for t in range(T)], dim=1)  # (C, T, H, W)
        latents = frames + 0.1 * torch.randn(C, T, H, W, generator=g)
        L = self.text_tokens
        text = torch.randn(L, self.text_channels, generator=g)
        valid = int(torch.randint(1, L + 1, (1,), generator=g)) if L else 0
        text_mask = torch.arange(L) < valid
        camera, plucker = self._camera(np.random.default_rng([self.seed, index, 2]))
        return {
            "latents": latents,
            "text": text,
            "text_mask": text_mask,
            "camera": camera,
            "plucker": plucker,
        }

    def _camera(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        H, W = self.size
        raw = 8 * (self.frames - 1) + 1
        s = np.linspace(0.0, 1.0, raw)
        yaw = rng.uniform(-0.8, 0.8) * s
        pitch = rng.uniform(-0.2, 0.2) * np.sin(rng.uniform(1, 4) * s)
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        c2w = np.tile(np.eye(4), (raw, 1, 1))
        ry = np.zeros((raw, 3, 3))
        ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cy, sy, 1, -sy, cy
        rx = np.zeros((raw, 3, 3))
        rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, cp, -sp, sp, cp
        c2w[:, :3, :3] = ry @ rx
        c2w[:, :3, 3] = np.outer(s, rng.uniform([-0.5, -0.1, 0.5], [0.5, 0.1, 3.0]))
        fx = W / 2 / np.tan(np.deg2rad(rng.uniform(50, 90)) / 2)
        cam = latent_camera_inputs(c2w, [fx, fx, W / 2, H / 2], image_size=(H, W))
        return cam.camera, cam.plucker


class ClipSamples(Dataset):
    """Item i: a window of 8 (T − 1) + 1 frames of the i-th clip of a `sanawm.data.ClipDataset` root.

    video (3, F, H, W) float32 in [-1, 1]; caption str; camera (T, 20) and plucker (48, T, H/32, W/32)
    from the window's absolute poses and intrinsics (`latent_camera_inputs`, which also refuses a field
    of view outside [25°, 120°]). The window start of each clip is fixed by the run's seed.
    """

    def __init__(self, root, latent_frames: int, size: tuple[int, int], seed: int) -> None:
        from ..data import ClipDataset

        self.size = tuple(size)
        self.clips = ClipDataset(root, num_frames=8 * (latent_frames - 1) + 1, size=self.size, seed=seed)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = self.clips[index]
        cam = latent_camera_inputs(
            item["c2w"].double().numpy(), item["intrinsics"].double().numpy(), image_size=self.size
        )
        return {
            "video": item["video"].permute(1, 0, 2, 3).contiguous(),
            "caption": item["caption"],
            "camera": cam.camera,
            "plucker": cam.plucker,
        }


class ClipEncoder:
    """Encodes a 'clips' batch where the model trains: video -> normalised VAE latents (the posterior
    mean), captions -> text embeddings and mask.

    vae: a diffusers `AutoencoderKLLTX2Video` folder (or a pipeline folder with vae/) or a folder written
    by `SmallVideoVAE.save_pretrained`. text_encoder: a Gemma-2 folder, or None for no text (L = 0)."""

    def __init__(
        self, data: DataSection, model: ModelConfig, device: torch.device, dtype: torch.dtype
    ) -> None:
        from ..text import Gemma2TextEncoder, NullTextEncoder

        if data.vae is None:
            raise ValueError(
                "data.source='clips' needs --data.vae=FOLDER: a diffusers AutoencoderKLLTX2Video folder or "
                "a SmallVideoVAE.save_pretrained folder whose latent channels match the model"
            )
        self.vae = load_vae(data.vae, device, dtype)
        self.tile = data.vae_tile_frames
        if (self.vae.temporal_stride, self.vae.spatial_stride) != (8, 32):
            raise ValueError(
                f"the VAE in {data.vae} compresses {self.vae.temporal_stride}x in time and "
                f"{self.vae.spatial_stride}x in space; training needs 8x and 32x"
            )
        if self.vae.latent_channels != model.in_channels:
            raise ValueError(
                f"the VAE in {data.vae} has {self.vae.latent_channels} latent channels but the model takes "
                f"in_channels={model.in_channels}; pick the matching model preset or VAE"
            )
        if data.text_encoder is None:
            self.text = NullTextEncoder(model.caption_channels, device=device)
        else:
            self.text = Gemma2TextEncoder.from_pretrained(
                data.text_encoder, max_length=data.text_tokens, dtype=dtype, device=device
            )
        if self.text.dim != model.caption_channels:
            raise ValueError(
                f"the text encoder gives {self.text.dim}-d embeddings but the model takes "
                f"caption_channels={model.caption_channels}"
            )

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        batch = dict(batch)
        video = batch.pop("video")
        batch["latents"] = self.vae.encode(video, tile_latent_frames=self.tile).float()
        text, mask = self.text.encode(list(batch.pop("caption")))
        batch["text"], batch["text_mask"] = text.float(), mask
        return batch


class TrainingSamples(Dataset):
    """Global position k -> the dataset item it reads, plus its noise ε (`latent_shape`) and k.

    Finite datasets are read in a fresh seeded permutation each epoch; `SyntheticClips` in order."""

    def __init__(self, dataset: Dataset, seed: int, latent_shape: tuple[int, ...]) -> None:
        self.dataset, self.seed, self.latent_shape = dataset, seed, tuple(latent_shape)
        self._perm: tuple[int, torch.Tensor] | None = None

    def item_index(self, k: int) -> int:
        if isinstance(self.dataset, SyntheticClips):
            return k
        n = len(self.dataset)
        epoch, pos = divmod(k, n)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, 3))
            self._perm = (epoch, torch.randperm(n, generator=g))
        return int(self._perm[1][pos])

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        item = dict(self.dataset[self.item_index(k)])
        g = torch.Generator().manual_seed(derive_seed(self.seed, k, 4))
        item["noise"] = torch.randn(self.latent_shape, generator=g)
        item["position"] = torch.tensor(k)
        return item


class RankSlices(Sampler[int]):
    """Positions for one rank: step s takes start + s·G + rank·(G / W) + j, j < G / W. Unbounded."""

    def __init__(self, start: int, global_batch: int, rank: int, world_size: int) -> None:
        if global_batch % world_size:
            raise ValueError(
                f"data.batch_size {global_batch} is the global batch and must be divisible by the "
                f"{world_size} ranks; use a multiple of {world_size}"
            )
        self.start, self.global_batch, self.rank = start, global_batch, rank
        self.local = global_batch // world_size

    def __iter__(self) -> Iterator[int]:
        k = self.start + self.rank * self.local
        while True:
            yield from range(k, k + self.local)
            k += self.global_batch


def build_dataset(data: DataSection, model: ModelConfig, seed: int) -> Dataset:
    if data.source == "synthetic":
        if model.plucker_channels != 48:
            raise ValueError(
                f"the synthetic source makes 48 Plücker channels (8 raw frames a latent frame); the model "
                f"has plucker_channels={model.plucker_channels}"
            )
        return SyntheticClips(
            model.in_channels, data.latent_frames, data.size, data.text_tokens, model.caption_channels, seed
        )
    if data.source == "clips":
        if data.path is None:
            raise ValueError("data.source='clips' needs --data.path=ROOT, a dataset root with manifest.jsonl")
        return ClipSamples(data.path, data.latent_frames, data.size, seed)
    if data.path is None:
        raise ValueError(
            "data.source='latents' needs --data.path=DIR, a latent cache written by `sanawm cache-latents`"
        )
    from .cache import LatentCache

    cache = LatentCache(data.path, text_dim=model.caption_channels)
    want = (model.in_channels, data.latent_frames, *data.latent_size)
    if cache.latent_shape != want:
        raise ValueError(
            f"the latent cache {data.path} holds latents {list(cache.latent_shape)} (C, T, h, w) but this "
            f"run "
            f"needs {list(want)} (model in_channels, data.latent_frames, data.size / 32); set "
            f"--data.latent_frames={cache.latent_shape[1]} "
            f"--data.size={cache.index['size'][0]},{cache.index['size'][1]} or re-cache"
        )
    if cache.text_dim != model.caption_channels:
        raise ValueError(
            f"the latent cache {data.path} holds {cache.text_dim}-d text embeddings but the model takes "
            f"caption_channels={model.caption_channels}"
        )
    return cache


def build_loader(
    dataset: Dataset, data: DataSection, model: ModelConfig, seed: int, start: int, rank: int, world_size: int
) -> DataLoader:
    """Batches of this rank's slice of each global batch of `dataset`, from global position `start` on."""
    shape = (model.in_channels, data.latent_frames, *data.latent_size)
    sampler = RankSlices(start, data.batch_size, rank, world_size)
    return DataLoader(
        TrainingSamples(dataset, seed, shape),
        batch_size=sampler.local,
        sampler=sampler,
        num_workers=data.workers,
        persistent_workers=data.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def derive_seed(*values: int) -> int:
    """A 63-bit seed from integers (independent streams for each (seed, index, purpose))."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> 1)


__all__ = [
    "ClipEncoder",
    "ClipSamples",
    "RankSlices",
    "SyntheticClips",
    "TrainingSamples",
    "build_dataset",
    "build_loader",
    "derive_seed",
]
