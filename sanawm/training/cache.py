"""The latent cache: encode a clip dataset once, train from latents instead of pixels.

    cache_latents("data/worlds", "cache/worlds-256", vae, num_frames=17, size=(256, 256))
    ds = LatentCache("cache/worlds-256")          # a torch Dataset, read lazily shard by shard

Sample k is window w = k % windows_per_clip of clip i = k // windows_per_clip of the dataset (the window
start and crop fixed by (seed, w) through `sanawm.data.ClipDataset`). Per sample a shard holds

    {k}.latents    (C, T, h, w) float32   normalised VAE latents (the posterior mean)
    {k}.camera     (T, 20)                `latent_camera_inputs` of the resized / cropped window
    {k}.plucker    (48, T, h, w)
    {k}.text       (L, D), {k}.text_mask (L,) bool    only with a text encoder

and its metadata the captions and clip ids. Shard s (`shard_00000.safetensors`, ...) holds samples
s·shard_size .. s·shard_size + shard_size − 1 and is written atomically (temporary file, then rename),
so an interrupted run resumes by skipping the shards that exist. `index.json` (the cache's config: VAE
folder and weight hash, size, frames, latent shape, text dim; and per sample its shard, key, clip and
caption) is written last; a cache without it is unfinished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from ..cameras import latent_camera_inputs

INDEX = "index.json"
FORMAT = "sanawm-latent-cache"
VERSION = 1


def shard_name(s: int) -> str:
    return f"shard_{s:05d}.safetensors"


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, bytes): identifies the VAE weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@torch.no_grad()
def cache_latents(
    dataset_root,
    out_dir,
    vae,
    text_encoder=None,
    *,
    num_frames: int,
    size: tuple[int, int],
    frame_stride: int = 1,
    shard_size: int = 64,
    windows_per_clip: int = 1,
    seed: int = 0,
    tile_latent_frames: int | None = None,
    progress=None,
    workers: int = 0,
    batch_size: int = 1,
) -> Path:
    """Encode every window of `dataset_root` into shards under `out_dir`; returns the index path.

    vae: a `sanawm.vae.VideoVAE` or a VAE folder (`sanawm.vae.load_vae`).
    text_encoder: a `sanawm.text.TextEncoder`, a Gemma-2 folder, or None (no text stored).
    progress: called as progress(done, total) with the number of samples encoded (or found in finished
        shards) so far, e.g. to drive a progress bar.
    workers: processes that decode and crop the windows (and make their camera inputs) ahead of the VAE;
        0 decodes in this process. batch_size: windows per VAE call. Neither changes what is stored
        beyond the VAE's own batch-size rounding.
    """
    from ..data import ClipDataset

    if shard_size < 1 or windows_per_clip < 1 or batch_size < 1 or workers < 0:
        raise ValueError(
            f"shard_size ({shard_size}), windows_per_clip ({windows_per_clip}) and batch_size ({batch_size}) "
            f"must be ≥ 1, workers ({workers}) ≥ 0"
        )
    vae_folder = None
    if isinstance(vae, (str, Path)):
        from ..vae import load_vae

        vae_folder = str(Path(vae).resolve())
        vae = load_vae(vae, torch.device("cuda" if torch.cuda.is_available() else "cpu"), torch.float32)
    if isinstance(text_encoder, (str, Path)):
        from ..text import Gemma2TextEncoder

        text_encoder = Gemma2TextEncoder.from_pretrained(text_encoder, device=vae.device)
    size = (int(size[0]), int(size[1]))
    T = vae.latent_frames(num_frames)
    h, w = size[0] // vae.spatial_stride, size[1] // vae.spatial_stride
    windows = [
        ClipDataset(dataset_root, num_frames, size=size, frame_stride=frame_stride, seed=seed + j)
        for j in range(windows_per_clip)
    ]
    n = len(windows[0]) * windows_per_clip
    config = {
        "format": FORMAT,
        "version": VERSION,
        "dataset": str(Path(dataset_root).resolve()),
        "vae": vae_folder,
        "vae_class": type(vae).__name__,
        "vae_hash": weights_hash(vae),
        "size": list(size),
        "num_frames": num_frames,
        "frame_stride": frame_stride,
        "latent_frames": T,
        "latent_shape": [vae.latent_channels, T, h, w],
        "text_dim": None if text_encoder is None else text_encoder.dim,
        "windows_per_clip": windows_per_clip,
        "seed": seed,
        "shard_size": shard_size,
        "num_samples": n,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    samples = []
    report = progress or (lambda done, total: None)
    report(0, n)
    shards = range((n + shard_size - 1) // shard_size)
    todo = [s for s in shards if not (out / shard_name(s)).is_file()]
    keys = [k for s in todo for k in range(s * shard_size, min(n, (s + 1) * shard_size))]
    loader = iter(
        DataLoader(
            _Windows(windows, keys, size),
            batch_size=None,
            num_workers=workers,
            prefetch_factor=4 if workers else None,
        )
    )
    for s in shards:
        path = out / shard_name(s)
        ks = range(s * shard_size, min(n, (s + 1) * shard_size))
        if s not in todo:  # finished by an earlier run
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["samples"])
            samples += meta
            report(ks.stop, n)
            continue
        tensors, meta = {}, []
        for start in range(ks.start, ks.stop, batch_size):
            items = [next(loader) for _ in range(min(batch_size, ks.stop - start))]
            video = torch.stack([item["video"].permute(1, 0, 2, 3) for item in items])  # (B, 3, F, H, W)
            latents = vae.encode(video, tile_latent_frames=tile_latent_frames).float().cpu()
            for item, lat in zip(items, latents, strict=True):
                k = item["key"]
                tensors[f"{k}.latents"] = lat.contiguous()
                tensors[f"{k}.camera"] = item["camera"].contiguous()
                tensors[f"{k}.plucker"] = item["plucker"].contiguous()
                if text_encoder is not None:
                    text, mask = text_encoder.encode([item["caption"]])
                    tensors[f"{k}.text"] = text[0].float().cpu().contiguous()
                    tensors[f"{k}.text_mask"] = mask[0].cpu().contiguous()
                meta.append({"key": k, "shard": path.name, "clip": item["clip"], "caption": item["caption"]})
            report(start + len(items), n)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"samples": json.dumps(meta)})
        os.replace(tmp, path)
        samples += meta
    index = {**config, "samples": samples}
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, out / INDEX)
    return out / INDEX


class _Windows(Dataset):
    """The windows of `keys` in order, decoded and cropped, with their camera inputs (for DataLoader
    workers, so decoding overlaps the VAE)."""

    def __init__(self, windows, keys: list[int], size: tuple[int, int]) -> None:
        self.windows, self.keys, self.size = windows, keys, size

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        k = self.keys[i]
        item = self.windows[k % len(self.windows)][k // len(self.windows)]
        cam = latent_camera_inputs(
            item["c2w"].double().numpy(), item["intrinsics"].double().numpy(), image_size=self.size
        )
        return {
            "key": k,
            "video": item["video"],
            "camera": cam.camera,
            "plucker": cam.plucker,
            "clip": item["clip"],
            "caption": item["caption"],
        }


class ShardedSamples(Dataset):
    """A finished folder of safetensors shards written with an index.json whose "entries" name each
    sample's shard and key: item k is {field: tensor} for the subclass's `fields`. Subclasses set `format`
    (the index's "format"), `fields`, `what` (for messages) and `build_hint` (the command that builds one)."""

    format: str = ""
    fields: tuple[str, ...] = ()
    what: str = "sample"
    build_hint: str = ""

    def __init__(self, root) -> None:
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(
                f"{self.root} has no {INDEX}: not a {self.what} folder, or an unfinished one; "
                f"{self.build_hint} builds (and finishes) it"
            )
        self.index = json.loads((self.root / INDEX).read_text())
        if self.index.get("format") != self.format:
            raise ValueError(f"{self.root / INDEX} is not a {self.format} index")
        self.entries = self.index["entries"]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.what} {index} is out of range for {len(self)}")
        entry = self.entries[index]
        with safe_open(str(self.root / entry["shard"]), framework="pt") as f:
            return {n: f.get_tensor(f"{entry['key']}.{n}") for n in self.fields}


def write_shards(
    out: Path,
    config: dict,
    samples: int,
    shard_size: int,
    batch_size: int,
    fill: Callable[[list[int]], dict[str, torch.Tensor]],
    entry: Callable[[int], dict] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Samples 0 .. samples − 1 into `shard_name(s)` files of `shard_size`, the folder a `ShardedSamples`
    reads: `fill(keys)` computes `batch_size` samples at a time as {"{k}.{field}": tensor}. A shard is
    written atomically and skipped when it exists (an interrupted build resumes); index.json (`config`
    plus per sample {"key", "shard", **entry(k)}) comes last, so a folder without it is unfinished.
    `progress(done, samples)` after each batch. The caller checks and writes config.json first
    (`check_resume`)."""
    report = progress or (lambda done, total: None)
    entries = []
    for s in range((samples + shard_size - 1) // shard_size):
        path = out / shard_name(s)
        ks = list(range(s * shard_size, min(samples, (s + 1) * shard_size)))
        entries += [{"key": k, "shard": path.name, **(entry(k) if entry else {})} for k in ks]
        if path.is_file():
            report(ks[-1] + 1, samples)
            continue
        tensors: dict[str, torch.Tensor] = {}
        for b in range(0, len(ks), batch_size):
            group = ks[b : b + batch_size]
            tensors.update({k: v.contiguous() for k, v in fill(group).items()})
            report(group[-1] + 1, samples)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps({**config, "entries": entries}, indent=1) + "\n")
    os.replace(tmp, out / INDEX)
    return out


def condition_batch(
    dataset: Dataset, keys: list[int], latent_frames: int, what: str
) -> dict[str, torch.Tensor]:
    """Items `keys` of a conditions dataset (a latent cache or a synthetic source; key k reads item
    k mod its length, unbounded sources item k) stacked in float32 over their first `latent_frames`:
    latents (B, C, T, h, w), camera (B, T, 20), plucker (B, 48, T, h, w), text (B, L, D), text_mask (B, L).
    `what` names the dataset being built in the error for too short clips."""
    n = len(dataset) if hasattr(dataset, "__len__") else None
    items = [dataset[k % n if n else k] for k in keys]
    latents = torch.stack([it["latents"] for it in items]).float()
    if latents.shape[2] < latent_frames:
        raise ValueError(
            f"the conditions have {latents.shape[2]} latent frames a clip but {what} of {latent_frames} were "
            "asked for; lower data.latent_frames or cache longer clips"
        )
    return {
        "latents": latents[:, :, :latent_frames],
        "camera": torch.stack([it["camera"][:latent_frames] for it in items]).float(),
        "plucker": torch.stack([it["plucker"][:, :latent_frames] for it in items]).float(),
        "text": torch.stack([it["text"] for it in items]).float(),
        "text_mask": torch.stack([it["text_mask"] for it in items]),
    }


def check_resume(out: Path, config: dict, what: str, empty_fix: str, other_fix: str) -> None:
    """Refuse to mix shards of two differently made datasets (`what`) in one folder `out`: shards with
    no config.json (`empty_fix` says what to do), or a config.json whose settings differ from `config`."""
    old_file = out / "config.json"
    if not old_file.is_file():
        if any(out.glob("shard_*.safetensors")):
            raise ValueError(f"{out} holds shards but no config.json; {empty_fix}")
        return
    old = json.loads(old_file.read_text())
    changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    if changed:
        raise ValueError(
            f"{out} holds {what} made with other settings ({', '.join(changed)} differ); {other_fix}"
        )


def _check_resume(out: Path, config: dict) -> None:
    check_resume(
        out,
        config,
        "a latent cache",
        "choose an empty --out folder",
        "choose another --out folder or delete that one",
    )


class LatentCache(Dataset):
    """Samples of a finished latent cache, read lazily: latents, camera, plucker, text, text_mask
    (zero-length text of width `text_dim` when the cache has none), caption, clip."""

    def __init__(self, root, text_dim: int | None = None) -> None:
        self.root = Path(root)
        index_file = self.root / INDEX
        if not index_file.is_file():
            raise FileNotFoundError(
                f"{self.root} has no {INDEX}: not a latent cache, or an unfinished one; write or finish it "
                f"with `sanawm cache-latents DATASET --vae VAE --out {self.root}`"
            )
        self.index = json.loads(index_file.read_text())
        if self.index.get("format") != FORMAT:
            raise ValueError(f"{index_file} is not a {FORMAT} index")
        self.samples = self.index["samples"]
        self.text_dim = self.index["text_dim"] if self.index["text_dim"] is not None else text_dim

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        return tuple(self.index["latent_shape"])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} is out of range for a cache of {len(self)} samples")
        entry = self.samples[index]
        k = entry["key"]
        with safe_open(str(self.root / entry["shard"]), framework="pt") as f:
            item = {name: f.get_tensor(f"{k}.{name}") for name in ("latents", "camera", "plucker")}
            if self.index["text_dim"] is not None:
                item["text"], item["text_mask"] = f.get_tensor(f"{k}.text"), f.get_tensor(f"{k}.text_mask")
            else:
                item["text"] = torch.zeros(0, self.text_dim or 0)
                item["text_mask"] = torch.zeros(0, dtype=torch.bool)
        item["caption"], item["clip"] = entry["caption"], entry["clip"]
        return item


__all__ = [
    "LatentCache",
    "ShardedSamples",
    "cache_latents",
    "check_resume",
    "condition_batch",
    "shard_name",
    "weights_hash",
    "write_shards",
]
