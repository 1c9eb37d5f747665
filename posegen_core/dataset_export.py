"""Write a generated dataset that SPIN's training code reads unchanged: images/*.png, annotations.npz in SPIN's field
layout (imgname, center, scale, part, S, pose, shape, has_smpl) plus camera arrays, and SPIN's static fits file.

The export is streamed: samples come from a ``SampleSource`` in chunks (a trained generator, or the samples a run's
dataset sampler chose), each chunk is rendered at the export size (independent of the loop's image size) and its PNGs
are encoded by worker threads while the next chunk renders; every ``shard_size`` samples the shard's annotations are
saved. Everything is written into ``<out>.partial/`` and renamed to ``<out>`` only when complete, so a reader never sees
half a dataset; an interrupted export continues from its last complete shard when started again with the same settings.

Each chunk of ``CHUNK`` samples draws its poses and its renderer randomness from two streams seeded by (seed, chunk
index): the same seed gives the same poses and viewpoints at any image size, and a resumed export renders exactly what
an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import distributed
from .camera import Intrinsics, project, root_relative, to_camera_frame
from .errors import ConfigError
from .io import atomic_savez, atomic_write_json
from .rotations import matrix_to_axis_angle
from .scene import camera_frame_rotations, render_scene

#: Samples per generator call, per render batch and per random stream.
CHUNK = 64
#: Samples per shard (a multiple of CHUNK): the unit of atomic writing and of resuming.
DEFAULT_SHARD = 1024
#: The marker file of a posegen export; folders without it are never deleted or overwritten.
MARKER = "export.json"
#: zlib level of the PNGs: 1 is about 4x faster to encode than PIL's default 6, for files about 10% larger.
PNG_COMPRESS_LEVEL = 1


def chunk_streams(seed: int, index: int) -> tuple[torch.Generator, torch.Generator]:
    """The two random streams of chunk ``index``: the latents (or any pose draw) and the renderer's draws (appearance,
    background). Apart, so re-rendering given poses draws the same appearance as rendering freshly sampled ones."""
    states = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2, dtype=np.uint64)
    return tuple(torch.Generator().manual_seed(int(s) & 0x7FFFFFFFFFFFFFFF) for s in states)  # type: ignore[return-value]


class SampleSource:
    """What a dataset is sampled from, chunk by chunk: ``poses(index, n, gen)`` gives (global_orient, body_pose, K) of
    chunk ``index``, or (global_orient, body_pose, K, shape) when each sample has its own body shape (a generator
    with ``generate_shape``; (n, shape_dim) in [0, 1], rendered as the ``subject``); ``chunk`` poses, places and
    renders them. Subclasses hold ``renderer``, ``body_model``, ``distance``, ``subject``, ``seed`` and ``device``."""

    renderer: Any
    body_model: nn.Module
    distance: float
    subject: Any
    seed: int
    device: torch.device | str

    def poses(self, index: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def chunk(self, index: int, n: int, intrinsics: Intrinsics | None) -> dict[str, torch.Tensor]:
        """The ``n`` (<= CHUNK) samples of chunk ``index``, rendered at ``intrinsics`` (None: no images).

        Returns CPU tensors: global_orient (n, 3), body_pose (n, 23, 3), viewpoint (n, 3), camera_joints (n, 24, 3)
        with the root at the camera distance, joints (n, 24, 3) root-relative, rotations (n, 24, 3, 3) (the root's in
        the camera frame), and images (n, 3, H, W) uint8 and alpha (n, 1, H, W) float when rendered; plus
        phenotype (n, shape_dim) when the samples carry their own body shape."""
        pose_gen, render_gen = chunk_streams(self.seed, index)
        with torch.no_grad():
            go, body_pose, view, *rest = self.poses(index, n, pose_gen)
            shape = rest[0] if rest else None
            if intrinsics is None:
                body = self.body_model.to(body_pose.device)(go, body_pose)
                cam, _ = to_camera_frame(body.joints, body.rotations, view, self.distance)
                data = {"camera_joints": cam, "joints": root_relative(cam),
                        "rotations": camera_frame_rotations(go, body_pose, view)}
            else:
                scene = render_scene(self.renderer, self.body_model, intrinsics, go, body_pose, view, self.distance,
                                     self.subject if shape is None else shape, render_gen)
                data = {"camera_joints": scene.camera_joints, "joints": scene.joints, "rotations": scene.rotations,
                        "images": (scene.images.clamp(0, 1) * 255).round().to(torch.uint8), "alpha": scene.alpha}
        data.update(global_orient=go, body_pose=body_pose, viewpoint=view)
        if shape is not None:
            data["phenotype"] = shape
        return {k: v.detach().cpu() for k, v in data.items()}

    def in_memory(self, samples: int, intrinsics: Intrinsics) -> dict[str, torch.Tensor]:
        """All ``samples`` rendered at ``intrinsics``, in memory (the loop's fine-tuning data; keep it small). In a
        distributed run each rank renders a contiguous block of the chunks and every rank receives all of them; the
        chunks' own random streams make the result the same at any world size."""
        starts = list(range(0, samples, CHUNK))
        world = distributed.world()
        mine = range(len(starts))
        if world.active and len(starts) >= world.size:
            counts = distributed.shares(len(starts), world.size)
            first = sum(counts[: world.rank])
            mine = range(first, first + counts[world.rank])
        parts = [self.chunk(i, min(CHUNK, samples - starts[i]), intrinsics) for i in mine]
        keys = ("global_orient", "body_pose", "viewpoint", "images", "joints", "rotations", "phenotype")
        local = {k: torch.cat([p[k] for p in parts]) for k in keys if k in parts[0]}
        if len(mine) == len(starts):
            return local
        return distributed.all_gather_dicts(local, list(local))


@dataclass
class GeneratedSource(SampleSource):
    """A trained generator G (theta, K) and its latent prior. G's bodies stand upright (zero global orientation); K
    carries the viewpoint. ``seed`` fixes every sample: the same seed gives the same poses at any image size."""

    generator: nn.Module
    prior: Any
    latent_dim: int
    renderer: Any
    body_model: nn.Module
    distance: float
    subject: Any
    seed: int
    device: torch.device | str = "cpu"

    def poses(self, index, n, gen):
        was_training = self.generator.training
        self.generator.eval()
        try:
            out = self.generator(self.prior.sample(n, self.latent_dim, generator=gen).to(self.device))
        finally:
            self.generator.train(was_training)
        go = torch.zeros(n, 3, dtype=out.body_pose.dtype, device=out.body_pose.device)
        if getattr(out, "shape", None) is not None:
            return go, out.body_pose, out.viewpoint, out.shape
        return go, out.body_pose, out.viewpoint


@dataclass
class FixedSamples(SampleSource):
    """Given samples (what a run's dataset sampler chose), re-rendered at any size. ``images``, when given, are the
    samples already rendered (uint8, (N, 3, h, w)); an export at that size writes them instead of rendering again.
    ``phenotype``, when given, is each sample's body shape (N, shape_dim), rendered as its ``subject``."""

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    viewpoint: torch.Tensor
    renderer: Any
    body_model: nn.Module
    distance: float
    subject: Any
    seed: int
    images: torch.Tensor | None = None
    device: torch.device | str = "cpu"
    phenotype: torch.Tensor | None = None

    def poses(self, index, n, gen):
        sl = slice(index * CHUNK, index * CHUNK + n)
        given = (self.global_orient, self.body_pose, self.viewpoint)
        if self.phenotype is not None:
            given += (self.phenotype,)
        return tuple(t[sl].to(self.device) for t in given)

    def chunk(self, index, n, intrinsics):
        if self.images is None or intrinsics is None or self.images.shape[-2:] != (intrinsics.height, intrinsics.width):
            return super().chunk(index, n, intrinsics)
        data = super().chunk(index, n, None)
        data["images"] = self.images[index * CHUNK : index * CHUNK + n]
        return data


def spin_fields(chunk: dict[str, torch.Tensor], intrinsics: Intrinsics, distance: float) -> dict[str, np.ndarray]:
    """SPIN's per-sample arrays (and posegen's camera arrays) for one rendered chunk; see docs/EXPORT.md."""
    from .spin_data import person_box, spin_j24_from_smpl24, spin_part_from_smpl24

    n = len(chunk["body_pose"])
    cam = chunk["camera_joints"].double()
    part = spin_part_from_smpl24(project(cam, intrinsics), cam[..., 2], intrinsics.height, intrinsics.width)
    center, scale = person_box(part, intrinsics.height, intrinsics.width)
    # SPIN's pose: the global orientation in the camera frame, then the 23 body joints
    root = matrix_to_axis_angle(chunk["rotations"][:, 0].double())
    pose = torch.cat([root, chunk["body_pose"].double().reshape(n, -1)], 1).numpy()
    return {
        "center": center, "scale": scale, "part": part.astype(np.float32),
        "S": spin_j24_from_smpl24(chunk["joints"]).astype(np.float32),
        "pose": pose.astype(np.float32), "shape": np.zeros((n, 10), dtype=np.float32),
        "has_smpl": np.ones(n, dtype=np.float64),
        "joints_smpl24": chunk["joints"].numpy().astype(np.float32),
        "viewpoint": chunk["viewpoint"].numpy().astype(np.float32),
        "cam_K": np.tile(intrinsics.matrix().numpy()[None], (n, 1, 1)),
        "cam_t": np.tile(np.array([[0.0, 0.0, distance]], dtype=np.float32), (n, 1)),
        **({"phenotype": chunk["phenotype"].numpy().astype(np.float32)} if "phenotype" in chunk else {}),
    }


# ------------------------------------------------------------------------------------------------ the writer
@dataclass(frozen=True)
class ExportSettings:
    samples: int
    size: int
    seed: int
    shard_size: int = DEFAULT_SHARD
    name: str = "posegen"  # the dataset's name in SPIN's config (its fits file is <name>_fits.npy)
    write_images: bool = True
    encode_threads: int = 2  # threads encoding PNGs while the next chunk renders; 0: in the rendering thread

    def check(self) -> "ExportSettings":
        if self.samples < 1:
            raise ConfigError(f"--samples must be at least 1; got {self.samples}.")
        if self.size < 16:
            raise ConfigError(
                f"the export size (--size, or export_size in a run) must be at least 16 pixels (SPIN reads 224, "
                f"HybrIK 256); got {self.size}."
            )
        if self.shard_size < CHUNK or self.shard_size % CHUNK:
            raise ConfigError(f"--shard-size must be a positive multiple of {CHUNK}; got {self.shard_size}.")
        if self.encode_threads < 0:
            raise ConfigError(f"--encode-threads must be 0 (encode in the rendering thread) or more; got "
                              f"{self.encode_threads}.")
        if not self.name or any(c in self.name for c in "/\\\0"):
            raise ConfigError(f"--name must be a plain dataset name (it names <name>_fits.npy); got {self.name!r}.")
        return self


def _marker(settings: ExportSettings, source: SampleSource, complete: bool, extra: dict[str, Any]) -> dict:
    return {"posegen_export": 1, "complete": complete, "samples": settings.samples, "size": settings.size,
            "seed": settings.seed, "shard_size": settings.shard_size, "name": settings.name,
            "images": settings.write_images, "chunk": CHUNK, "distance": source.distance,
            "subject": str(source.subject), **extra}


def _is_posegen_export(folder: Path) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()).get("posegen_export") == 1
    except (OSError, ValueError, AttributeError):
        return False


def check_output_folder(folder: Path, replace: bool) -> None:
    """Refuse to write over anything posegen did not create (and over an earlier export unless ``replace``)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder; choose another --out.")
    if not any(folder.iterdir()):
        return
    if not _is_posegen_export(folder):
        raise ConfigError(
            f"{folder} already holds files that are not a posegen export; posegen never overwrites them. "
            "Choose an empty or new --out folder."
        )
    if not replace:
        raise ConfigError(f"{folder} already holds a posegen export; pass --overwrite to replace it, or another --out.")


def export_dataset(
    folder: str | Path,
    source: SampleSource,
    settings: ExportSettings,
    reporter: Any = None,
    replace: bool = False,
    extra_info: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Sample, render and write ``settings.samples`` samples from ``source`` into ``folder`` (see the module doc).

    ``reporter``: a ``progress.Reporter`` for the progress bar (one is made when None). ``replace``: an earlier
    posegen export in ``folder`` may be replaced. Returns the folder."""
    from .progress import Reporter

    settings = settings.check()
    folder = Path(folder)
    world = distributed.world()
    check_output_folder(folder, replace)
    partial = folder.with_name(folder.name + ".partial")
    say = (log or (lambda msg: None)) if world.main else (lambda msg: None)
    marker = _marker(settings, source, False, extra_info or {})
    distributed.barrier()  # every rank has checked the folder before rank 0 changes anything
    if world.main:
        if partial.exists():
            previous = _read_marker(partial)
            if previous is None:
                raise ConfigError(
                    f"{partial} exists but is not a posegen export in progress; move it away and start again."
                )
            if marker_key(previous) != marker_key(marker):
                say(f"{partial}: an interrupted export with other settings; starting afresh")
                shutil.rmtree(partial)
        (partial / "images").mkdir(parents=True, exist_ok=True)
        (partial / "shards").mkdir(exist_ok=True)
        atomic_write_json(marker, partial / MARKER)
    distributed.barrier()

    intr = Intrinsics.framing(settings.size, source.distance)
    n = settings.samples
    width = max(6, len(str(n - 1)))
    names = np.array([f"images/{i:0{width}d}.png" for i in range(n)])
    shards = list(range(0, n, settings.shard_size))
    mine = [k for k in range(len(shards)) if k % world.size == world.rank]  # each rank writes its own shards
    own_reporter = reporter is None
    reporter = reporter or Reporter()
    if own_reporter:
        reporter.__enter__()
    try:
        task = reporter.task(f"export {n} samples at {settings.size}x{settings.size}", n)
        done = sum(min(settings.shard_size, n - shards[k]) for k in mine if _shard_path(partial, k).is_file())
        if done:
            say(f"resuming the export in {partial}: {done} of {n} samples already written")
        reporter.update(task, done, None)
        t0, written = time.time(), 0
        with ThreadPoolExecutor(max_workers=max(1, settings.encode_threads)) as pool:
            for k in mine:
                start = shards[k]
                if _shard_path(partial, k).is_file():
                    continue
                stop = min(start + settings.shard_size, n)
                fields: list[dict[str, np.ndarray]] = []
                pending: list[Future] = []
                for s in range(start, stop, CHUNK):
                    m = min(CHUNK, stop - s)
                    chunk = source.chunk(s // CHUNK, m, intr if settings.write_images else None)
                    fields.append(spin_fields(chunk, intr, source.distance))
                    if settings.write_images and not settings.encode_threads:
                        _write_pngs(partial, names[s : s + m], chunk["images"].numpy())
                    elif settings.write_images:
                        pending.append(pool.submit(_write_pngs, partial, names[s : s + m], chunk["images"].numpy()))
                        while len(pending) > 2:  # at most ~3 chunks of pixels in memory; errors surface here
                            pending.pop(0).result()
                    written += m
                    last = s + m == stop  # one log line per shard when not on a terminal
                    rate = {"images_per_s": written / max(time.time() - t0, 1e-9)}
                    reporter.update(task, done + written, rate if last else None)
                for f in pending:
                    f.result()
                shard = {key: np.concatenate([f[key] for f in fields]) for key in fields[0]}
                atomic_savez(_shard_path(partial, k), **shard)  # it exists only once its images are all written
        reporter.done(task)
    finally:
        if own_reporter:
            reporter.__exit__(None, None, None)

    # all shards complete: rank 0 merges, writes SPIN's files, marks the export complete and renames it into place
    distributed.barrier()
    if world.main:
        _finish(folder, partial, names, len(shards), settings, marker)
    distributed.barrier()
    return folder


def _finish(folder: Path, partial: Path, names: np.ndarray, shards: int, settings: ExportSettings,
            marker: dict[str, Any]) -> None:
    from .spin_data import write_spin_annotations, write_static_fits

    parts = []
    for k in range(shards):
        with np.load(_shard_path(partial, k), allow_pickle=False) as z:
            parts.append({key: z[key] for key in z.files})
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    fields_spin = {key: arrays.pop(key) for key in ("center", "scale", "part", "S", "pose", "shape")}
    write_spin_annotations(partial / "annotations.npz", imgname=names, **fields_spin, **arrays)
    write_static_fits(partial / f"{settings.name}_fits.npy", fields_spin["pose"], fields_spin["shape"])
    shutil.rmtree(partial / "shards")
    atomic_write_json({**marker, "complete": True}, partial / MARKER)
    if folder.exists():  # checked above: empty, or a posegen export we may replace
        shutil.rmtree(folder)
    os.replace(partial, folder)


def marker_key(marker: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in marker.items() if k != "complete"}


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("posegen_export") == 1 else None


def _shard_path(partial: Path, k: int) -> Path:
    return partial / "shards" / f"{k:05d}.npz"


def _write_pngs(root: Path, names: np.ndarray, images: np.ndarray) -> bool:
    """Encode (n, 3, H, W) uint8 images as PNGs (PIL releases the GIL while compressing: threads overlap)."""
    from PIL import Image

    hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    for name, img in zip(names, hwc):
        Image.fromarray(img).save(root / name, compress_level=PNG_COMPRESS_LEVEL)
    return True


# ------------------------------------------------------------------------------------------------ from a run
def export_size_for(cfg: Any, estimator: Any = None) -> int:
    """The export's image size: ``cfg.export_size``, else the size the estimator reads (its ``input_size``: SPIN
    224, HybrIK 256, the default simple CNN 64), else the loop's ``image_size``."""
    if cfg.export_size is not None:
        return int(cfg.export_size)
    size = getattr(estimator, "input_size", None)
    return int(size) if size else int(cfg.image_size)
