"""`WorldModelPipeline`: first frame + camera path (+ prompt) -> video that follows the camera.

Glue and I/O only: the network (`sanawm.model`), the samplers (`sanawm.sampling`), the VAE
(`sanawm.vae`) and the text encoder (`sanawm.text`) are separate, swappable components.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..cameras import ActionSpeeds, Trajectory, actions_to_trajectory, latent_camera_inputs
from ..cameras.image_ops import resize_and_center_crop_image
from ..model import SanaWMTransformer, from_diffusers
from ..model.graphs import GraphedStreamStep
from ..sampling import (
    Conditions,
    EulerSchedule,
    FewStepSchedule,
    Guidance,
    check_context_sigma,
    chunk_layout,
    sample_bidirectional,
    sample_chunked,
)
from ..text import Gemma2TextEncoder, NullTextEncoder, TextEncoder
from ..vae import VideoVAE, load_vae, to_uint8_frames
from .session import WorldSession, initial_state

MODES = ("bidirectional", "chunk-causal", "streaming")
# The small model trained on procedural worlds that ships in the package (docs/model-card.md), and a
# first frame and a one-minute key path to show it with (`sanawm generate` with no arguments).
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL = ASSETS / "default-model"
EXAMPLE_IMAGE = ASSETS / "example.png"
# 10 s forward, a 180° turn on the spot, 10 s back (a revisit), turn again, then a curve and a reverse.
EXAMPLE_ACTIONS = "w-160,j-150,w-160,j-150,wl-170,-10,s-160"


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate. `num_frames` wins over `seconds`; either is snapped down to 8k+1 frames.
    `context_sigma` (chunk-wise modes): the σ in [0, 1) each finished chunk is re-noised to before the
    network reads it as context (`sanawm.sampling.ChunkSession.commit`), 0 = clean; the noise comes from
    a generator seeded `seed + 3`, drawn chunk by chunk."""

    seconds: float | None = 10.0
    num_frames: int | None = None
    fps: float = 16.0
    height: int = 704
    width: int = 1280
    mode: str = "bidirectional"
    steps: int = 60
    shift: float = 8.0
    timesteps: tuple[float, ...] | None = None  # a few-step list (distilled students) instead of `steps`
    guidance: float = 5.0
    guidance_drops_camera: bool = False
    negative_prompt: str = ""
    seed: int = 0
    chunk: int = 3
    first_chunk: int = 4
    kv_window: int | None = 2
    context_sigma: float = 0.0
    fov_deg: float = 60.0  # horizontal field of view used when no intrinsics are given
    # "auto": the VAE's `default_decode_tile`: pieces of 12 latent frames decoded one after another with
    # carried state for our SmallVideoVAE (exact), overlapping tiles of 16 for LTX-2's (`VideoVAE.decode`);
    # None: the whole clip at once.
    decode_tile_latent_frames: int | str | None = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.num_frames is None and self.seconds is None:
            raise ValueError("give seconds or num_frames")
        check_context_sigma(self.context_sigma)
        tile = self.decode_tile_latent_frames
        if tile != "auto" and tile is not None and (not isinstance(tile, int) or tile < 2):
            raise ValueError(
                f"decode_tile_latent_frames must be 'auto', None (whole clip) or a number of latent frames "
                f">= 2, got {tile!r}"
            )

    def frames_wanted(self) -> int:
        n = self.num_frames if self.num_frames is not None else int(round(self.seconds * self.fps)) + 1
        if n < 1:
            raise ValueError(f"asked for {n} frames; need at least 1")
        return (n - 1) // 8 * 8 + 1


@dataclass
class GenerationResult:
    frames: np.ndarray  # (F, H, W, 3) uint8
    trajectory: Trajectory  # the cameras used, intrinsics in output pixels
    latents: torch.Tensor  # (1, C, T, h, w)
    timings: dict = field(default_factory=dict)
    stage1_latents: torch.Tensor | None = None  # with a refiner: stage 1's latents, before stage 2


class WorldModelPipeline:
    def __init__(
        self,
        transformer: SanaWMTransformer,
        vae: VideoVAE,
        text_encoder: TextEncoder,
        scheduler_config: dict | None = None,
    ) -> None:
        if transformer.cfg.in_channels != vae.latent_channels:
            raise ValueError(
                f"the network reads {transformer.cfg.in_channels}-channel latents but the VAE makes "
                f"{vae.latent_channels}; use the VAE the network was trained with"
            )
        self.transformer, self.vae, self.text_encoder = transformer.eval(), vae.eval(), text_encoder
        self.scheduler_config = scheduler_config or {}
        self.generation_defaults: dict = {}
        self.is_student = False  # a distilled few-step student (a pipeline folder's student/)
        self.refiner = None  # the folder's own stage-2 refiner (refiner/, `sanawm refine export`)
        self.stream_graphs: GraphedStreamStep | None = None  # see enable_cuda_graphs

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    # ---- loading ----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, path=DEFAULT_MODEL, dtype: torch.dtype = torch.float32, device="cpu", student: bool | None = None
    ) -> WorldModelPipeline:
        """Load a diffusers-format SANA-WM pipeline folder (transformer/, vae/, text_encoder/,
        tokenizer/, scheduler/) from local disk; by default the small model shipped in the package.
        A `generation.json` beside them (written by `sanawm export`) sets `generation_defaults`.
        A distilled few-step student in `student/` (transformer/ + generation.json, written by `sanawm
        distill export`) is loaded instead of the teacher when present (`student=None`), always
        (`True`; an error without one) or never (`False`). A small stage-2 refiner in `refiner/`
        (`sanawm refine export`) is loaded as `pipe.refiner` (pass it as `generate(refiner=...)`).
        Nothing is downloaded."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} does not exist")
        if not (folder / "transformer" / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a SANA-WM pipeline folder: expected transformer/config.json (and vae/, "
                "text_encoder/, tokenizer/, scheduler/), as SanaWMPipeline.save_pretrained writes"
            )
        student_dir = folder / "student"
        has_student = (student_dir / "transformer" / "config.json").is_file()
        if student and not has_student:
            raise FileNotFoundError(
                f"{folder} has no distilled student (student/transformer/); write one with `sanawm distill "
                "export`, or load the multi-step model (student=False, `sanawm generate --teacher`)"
            )
        use_student = has_student and student is not False
        network = student_dir if use_student else folder
        transformer = from_diffusers(network / "transformer", dtype=dtype, device=device)
        vae = load_vae(folder / "vae", dtype=dtype, device=device)
        if (folder / "text_encoder").is_dir():
            text = Gemma2TextEncoder.from_pretrained(folder, dtype=dtype, device=device)
        else:
            text = NullTextEncoder(transformer.cfg.caption_channels, dtype=dtype, device=device)
        sched = folder / "scheduler" / "scheduler_config.json"
        scheduler_config = json.loads(sched.read_text()) if sched.is_file() else None
        pipe = cls(transformer, vae, text, scheduler_config)
        known = {f.name for f in fields(GenerationConfig)}
        for defaults in [folder / "generation.json"] + ([network / "generation.json"] if use_student else []):
            if defaults.is_file():  # the student's defaults (its few-step sampler) override the folder's
                raw = json.loads(defaults.read_text())
                pipe.generation_defaults.update({k: v for k, v in raw.items() if k in known})
        pipe.is_student = use_student
        if (folder / "refiner" / "transformer" / "config.json").is_file():
            from ..refine.small import SmallRefiner

            pipe.refiner = SmallRefiner.from_folder(
                folder / "refiner", text_encoder=text, device=device, dtype=dtype
            )
        return pipe

    def compile(self, mode: str | None = None) -> WorldModelPipeline:
        """Compile the network's blocks with torch.compile (`SanaWMTransformer.compile_blocks`): the first
        generation pays the compilation (tens of seconds on a GPU), later ones run faster (a streamed
        60 s 720p minute: 29 s → 13 s on an H100, docs/benchmarks.md). Outputs are unchanged."""
        self.transformer.compile_blocks(mode)
        return self

    def enable_cuda_graphs(self, enabled: bool = True, max_graphs: int = 16) -> WorldModelPipeline:
        """Replay the network's streaming calls as CUDA graphs (`sanawm.model.graphs.GraphedStreamStep`)
        in streaming generation and sessions: each call shape is captured once, on its first calls, and
        replayed after that, for this and later clips (same outputs, far fewer kernel launches). Needs
        the network on a CUDA device and mode 'streaming'; call `compile()` first when compiling. Costs
        GPU memory: about 2 GB per graph for sana-wm-2.6b at 720p, ~4 graphs per guidance branch.
        `enabled=False` drops the graphs."""
        self.stream_graphs = GraphedStreamStep(self.transformer, max_graphs) if enabled else None
        return self

    def generation_config(self, **overrides) -> GenerationConfig:
        """`GenerationConfig` from this model's defaults (its generation.json), then `overrides` (None
        values are skipped, so unset command-line options keep the model's defaults)."""
        values = {**self.generation_defaults, **{k: v for k, v in overrides.items() if v is not None}}
        if isinstance(values.get("timesteps"), list):
            values["timesteps"] = tuple(values["timesteps"])
        return GenerationConfig(**values)

    # ---- inputs -----------------------------------------------------------------------------------

    def camera_path(
        self, cfg: GenerationConfig, trajectory=None, actions=None, intrinsics=None, image_size=None
    ) -> Trajectory:
        """The raw-frame camera path of the clip: from `actions` or a `Trajectory`, trimmed to the
        requested length (8k+1 frames), intrinsics in the source image's pixels."""
        if (trajectory is None) == (actions is None):
            raise ValueError("give exactly one of trajectory= (poses) or actions= (a key-action string)")
        if actions is not None:
            trajectory = actions_to_trajectory(actions, fps=cfg.fps)
        want = cfg.frames_wanted()
        if len(trajectory) < want:
            have = (len(trajectory) - 1) / cfg.fps
            raise ValueError(
                f"the trajectory has {len(trajectory)} poses but {want} frames "
                f"({(want - 1) / cfg.fps:g} s at {cfg.fps:g} fps) were asked for; ask for {have:g} s, "
                f"extend the path, or resample it to "
                f"{want} frames with sanawm.cameras.resample.resample(traj, num_frames={want})"
            )
        c2w = trajectory.c2w[:want]
        if intrinsics is None:
            intrinsics = trajectory.intrinsics[:want] if trajectory.intrinsics is not None else None
        if intrinsics is None:
            intrinsics = default_intrinsics(image_size, cfg.fov_deg)
        return Trajectory(c2w, intrinsics, image_size, cfg.fps)

    def prepare_image(self, image, path: Trajectory, cfg: GenerationConfig):
        """Resize and centre-crop the first frame to (height, width) as the release does, moving the
        intrinsics with it. Returns (pixels (1, 3, H, W) in [-1, 1], trajectory at output size)."""
        if isinstance(image, (str, Path)):
            try:
                image = Image.open(image)
                image.load()
            except (OSError, ValueError) as err:
                raise ValueError(f"cannot read the image {image}: {err}") from None
        image = image.convert("RGB")
        cropped, k = resize_and_center_crop_image(image, (cfg.height, cfg.width), path.intrinsics)
        pixels = (
            torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
        )
        return pixels, replace(path, intrinsics=k, image_size=(cfg.height, cfg.width))

    # ---- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        image,
        prompt: str = "",
        trajectory: Trajectory | None = None,
        actions: str | None = None,
        intrinsics=None,
        config: GenerationConfig | None = None,
        progress=None,
        drop_camera: bool = False,
        refiner=None,
    ) -> GenerationResult:
        """Generate a video. `intrinsics` are in the input image's pixels (default: `config.fov_deg`).
        `config` None: the model's defaults (`generation_config()`). `drop_camera` removes the camera
        inputs from every guidance branch (an evaluation baseline).

        `refiner`: a stage-2 refiner (`sanawm.refine`: this folder's own `pipe.refiner`, or e.g.
        `LTX2Refiner.from_folder(...)`) working in this model's latent space; camera-conditioned
        refiners get each block's camera inputs (none with `drop_camera`). In streaming mode it
        refines each chunk right behind stage 1 (a
        `RefinerStream`: memory stays constant in video length); otherwise the whole clip after it. The
        first latent frame is the refiner's sink, so the conditioning image is kept. Its re-noising is
        seeded by `config.seed + 2`. `GenerationResult.latents` are then the refined latents and
        `GenerationResult.stage1_latents` stage 1's (the same rollout as without a refiner)."""
        cfg = config if config is not None else self.generation_config()
        if refiner is not None:  # before any work: a refiner of another latent space cannot run
            channels = getattr(refiner, "latent_channels", None)
            if channels is None:
                channels = getattr(getattr(refiner, "transformer", None), "config", None)
                channels = getattr(channels, "in_channels", None)
            if channels is not None and channels != self.transformer.cfg.in_channels:
                raise ValueError(
                    f"the refiner works on {channels}-channel latents but this model's are "
                    f"{self.transformer.cfg.in_channels}-channel; use a refiner trained for this model's VAE"
                )
            from ..refine.ltx2 import LTX2Refiner
            from ..vae.ltx2 import LTX2VAE

            if isinstance(refiner, LTX2Refiner) and not isinstance(self.vae, LTX2VAE):
                raise ValueError(  # same width, another latent space (e.g. the shipped model's 128 channels)
                    f"the LTX-2 refiner works in the LTX-2 VAE's latent space, but this model's VAE is "
                    f"{type(self.vae).__name__}; use a refiner trained for this model's VAE (its own "
                    "refiner/: `sanawm refine train` and `sanawm refine export`)"
                )
        img_size = _image_size(image)
        path = self.camera_path(cfg, trajectory, actions, intrinsics, img_size)
        pixels, path = self.prepare_image(image, path, cfg)
        stream, refined, cams, done = None, [], None, [0]
        if refiner is not None:
            g = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
            if not drop_camera:
                from ..refine.base import RefinerCameras

                cams = RefinerCameras(*self.camera_inputs(path))
            if cfg.mode == "streaming":
                stream = refiner.stream(prompt, fps=cfg.fps, generator=g)

        def hook(i, x):  # stage 2 right behind stage 1: push each finished chunk with its cameras
            n = x.shape[2]
            chunk_cams = None if cams is None else cams.frames(done[0], done[0] + n)
            done[0] += n
            refined.append(stream.push(x, chunk_cams))

        latents = self.sample_latents(
            pixels, path, prompt, cfg, progress, drop_camera, chunk_hook=None if stream is None else hook
        )
        stage1 = latents if refiner is not None else None
        if stream is not None:
            refined.append(stream.finish())
            latents = torch.cat(refined, 2)
        elif refiner is not None:
            latents = refiner.refine(latents, prompt, fps=cfg.fps, generator=g, cameras=cams)
        return GenerationResult(self.decode(latents, cfg), path, latents, stage1_latents=stage1)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, config: GenerationConfig | None = None) -> np.ndarray:
        """Latents (1, C, T, h, w) -> (F, H, W, 3) uint8 frames, as `generate` decodes them (`config`'s
        `decode_tile_latent_frames`; None: the model's defaults)."""
        cfg = config if config is not None else self.generation_config()
        video = self.vae.decode(latents.to(self.vae.dtype), tile_latent_frames=cfg.decode_tile_latent_frames)
        return to_uint8_frames(video)

    @torch.no_grad()
    def session(
        self,
        image,
        prompt: str = "",
        intrinsics=None,
        config: GenerationConfig | None = None,
        speeds: ActionSpeeds | str | None = None,
        decode_context: int | None = None,
    ) -> WorldSession:
        """Start an interactive streaming session from `image` (see `sanawm.pipelines.session`).

        `intrinsics` are in the input image's pixels (default: `config.fov_deg`); `speeds` set how far
        key actions move ("diffusers", "streaming" or an `ActionSpeeds`); `decode_context` is how many
        earlier latent frames the state keeps for decoding (None: the VAE's `decode_overlap()`, which
        makes chunk-by-chunk decoding exact for a causal decoder of known receptive field): each new chunk
        is decoded with them as left context, or, for a VAE that decodes in pieces, alone with a carried
        cache that a restored session rebuilds from them.
        `config.seconds` / `num_frames` are ignored: the video is as long as the actions and poses given
        to `step`.
        """
        cfg = config if config is not None else self.generation_config(mode="streaming")
        if cfg.mode != "streaming":
            raise ValueError(
                f"a session generates chunk by chunk; pass GenerationConfig(mode='streaming', ...), got "
                f"mode={cfg.mode!r}"
            )
        img_size = _image_size(image)
        if intrinsics is None:
            intrinsics = default_intrinsics(img_size, cfg.fov_deg)
        start = Trajectory(np.eye(4)[None], intrinsics, img_size, cfg.fps)
        pixels, start = self.prepare_image(image, start, cfg)
        state = initial_state(self, pixels, start.intrinsics[0], prompt, cfg, speeds, decode_context)
        return WorldSession(self, state)

    def camera_inputs(self, path: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
        """camera (1, T, 20) and plucker (1, 48, T, h, w) of a prepared path (network device and dtype)."""
        dtype = next(self.transformer.parameters()).dtype
        cam = latent_camera_inputs(path.c2w, path.intrinsics, path.image_size).to(self.device, dtype)
        return cam.batched()

    def sample_latents(
        self,
        pixels,
        path: Trajectory,
        prompt: str,
        cfg: GenerationConfig,
        progress=None,
        drop_camera: bool = False,
        chunk_hook=None,
    ):
        """Latents (1, C, T, h, w) for a prepared first frame and path. `drop_camera`: the network sees
        camera=None and plucker=None in every branch (noise, text, schedule and guidance unchanged).
        `chunk_hook(index, latents)` sees every finished chunk of the chunk-wise modes."""
        device, dtype = self.device, next(self.transformer.parameters()).dtype
        first = self.vae.encode(pixels[:, :, None].to(device, self.vae.dtype)).to(dtype)
        camera, plucker = self.camera_inputs(path)
        text, mask = self.text_encoder.encode([prompt])
        T = camera.shape[1]
        if drop_camera:
            camera, plucker = None, None
        return self.sample_conditioned(
            first, camera, plucker, text, mask, cfg, [cfg.seed], T, progress, chunk_hook
        )

    def sample_conditioned(
        self,
        first: torch.Tensor,
        camera: torch.Tensor | None,
        plucker: torch.Tensor | None,
        text: torch.Tensor,
        mask: torch.Tensor,
        cfg: GenerationConfig,
        seeds: list[int],
        num_latent_frames: int,
        progress=None,
        chunk_hook=None,
    ) -> torch.Tensor:
        """Stage-1 latents (B, C, T, h, w) of a batch from encoded inputs: first latent frames
        (B, C, 1, h, w),
        camera (B, T, 20) / plucker (B, 48, T, h, w) or None, text (B, L, D) with mask (B, L), and one seed
        per clip. Clip b is exactly what `sample_latents` gives with `cfg.seed = seeds[b]` (its noise,
        re-noising and context noise come from its own generators, seeded seed, seed + 1 and seed + 3)."""
        device, dtype = self.device, next(self.transformer.parameters()).dtype
        B, T = first.shape[0], num_latent_frames
        if len(seeds) != B:
            raise ValueError(f"give one seed per clip: {len(seeds)} seeds for a batch of {B}")
        first = first.to(device, dtype)
        neg, neg_mask = self.text_encoder.encode_negative([cfg.negative_prompt] * B)
        cond = Conditions(text.to(device, dtype), mask.to(device), camera, plucker)
        shape = (1, first.shape[1], T, *first.shape[-2:])
        noise = torch.cat(
            [
                torch.randn(
                    shape, generator=torch.Generator(device=device).manual_seed(s), device=device, dtype=dtype
                )
                for s in seeds
            ]
        )
        guidance = Guidance(cfg.guidance, drop_text=True, drop_camera=cfg.guidance_drops_camera)
        neg, neg_mask = neg.to(device, dtype), neg_mask.to(device)
        if self.stream_graphs is not None and cfg.mode != "streaming":
            raise ValueError(
                f"CUDA graphs replay the streaming step, but mode is {cfg.mode!r}: generate with mode "
                "'streaming' (--mode streaming), or turn them off (pipe.enable_cuda_graphs(False); no "
                "--cuda-graphs)"
            )
        if cfg.mode == "bidirectional":
            schedule = EulerSchedule(cfg.steps, cfg.shift, self.scheduler_config)
            return sample_bidirectional(
                self.transformer, noise, first, cond, schedule, guidance, neg, neg_mask, progress
            )
        schedule = (
            FewStepSchedule(tuple(cfg.timesteps))
            if cfg.timesteps is not None
            else EulerSchedule(cfg.steps, cfg.shift, self.scheduler_config)
        )
        chunks = chunk_layout(T, cfg.chunk, cfg.first_chunk)

        def on_chunk(i, x):
            if chunk_hook is not None:
                chunk_hook(i, x)
            if progress is not None:
                progress(i + 1, len(chunks))

        def chunk_noise(offset: int):
            """chunk index -> (B, C, size, h, w) noise, clip b's from a generator seeded seeds[b] + offset."""
            gens = [torch.Generator(device=device).manual_seed(s + offset) for s in seeds]

            def draw(i: int) -> torch.Tensor:
                size = (1, first.shape[1], chunks[i], *first.shape[-2:])
                return torch.cat([torch.randn(size, generator=g, device=device, dtype=dtype) for g in gens])

            return draw

        next_renoise, context_noise = chunk_noise(1), chunk_noise(3)

        def renoise(i, step):
            return next_renoise(i)

        return sample_chunked(
            self.transformer,
            noise,
            first,
            cond,
            chunks,
            schedule,
            guidance,
            neg,
            neg_mask,
            kv_window=cfg.kv_window,
            streaming=cfg.mode == "streaming",
            renoise=renoise,
            on_chunk=on_chunk,
            context_sigma=cfg.context_sigma,
            context_noise=context_noise,
            cuda_graphs=self.stream_graphs,
        )


def default_intrinsics(image_size: tuple[int, int], fov_deg: float) -> list[float]:
    """Pixel (fx, fy, cx, cy) of a centred pinhole with horizontal field of view `fov_deg`."""
    h, w = image_size
    f = (w / 2) / math.tan(math.radians(fov_deg) / 2)
    return [f, f, w / 2, h / 2]


def _image_size(image) -> tuple[int, int]:
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise FileNotFoundError(f"image {image} does not exist")
        try:
            with Image.open(image) as im:
                return im.height, im.width
        except OSError as err:
            raise ValueError(f"cannot read the image {image}: {err}") from None
    return image.height, image.width
