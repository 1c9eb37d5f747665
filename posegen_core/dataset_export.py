"""Write a generated dataset that SPIN's training code reads unchanged: images/*.png, annotations.npz in SPIN's field
layout (imgname, center, scale, part, S, pose, shape, has_smpl) plus camera arrays, and SPIN's static fits file.

The export is streamed: poses and viewpoints come from the trained generator in chunks, each chunk is rendered at the
export size (independent of the loop's image size) and its PNGs are encoded by worker threads while the next chunk
renders; every ``shard_size`` samples the shard's annotations are saved. Everything is written into
``<out>.partial/`` and renamed to ``<out>`` only when complete, so a reader never sees half a dataset; an interrupted
export continues from its last complete shard when started again with the same settings.

Each chunk of ``CHUNK`` samples draws its latents and its renderer randomness from one generator seeded by
(seed, chunk index): the same seed gives the same poses and viewpoints at any image size, the loop's in-memory
fine-tuning data is the same samples as its exported dataset, and a resumed export renders exactly what an
uninterrupted one would.
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

from .camera import Intrinsics, project, root_relative, to_camera_frame, viewpoint_rotation
from .errors import ConfigError
from .io import atomic_savez, atomic_write_json
from .rotations import matrix_to_axis_angle
from .scene import camera_frame_rotations

#: Samples per generator call, per render batch and per random stream.
CHUNK = 64
#: Samples per shard (a multiple of CHUNK): the unit of atomic writing and of resuming.
DEFAULT_SHARD = 1024
#: The marker file of a posegen export; folders without it are never deleted or overwritten.
MARKER = "export.json"
#: zlib level of the PNGs: 1 is about 4x faster to encode than PIL's default 6, for files about 10% larger.
PNG_COMPRESS_LEVEL = 1


def chunk_generator(seed: int, index: int) -> torch.Generator:
    """The random stream of chunk ``index``: latents first, then the renderer's draws (appearance, background)."""
    mixed = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & 0x7FFFFFFFFFFFFFFF)


@dataclass
class GeneratedSource:
    """What a dataset is sampled from: a trained generator G (theta, K), its latent prior, and the renderer.

    G's bodies stand upright (zero global orientation); K carries the viewpoint. ``seed`` fixes every sample."""

    generator: nn.Module
    prior: Any
    latent_dim: int
    renderer: Any
    body_model: nn.Module
    distance: float
    subject: Any
    seed: int
    device: torch.device | str = "cpu"

    def chunk(self, index: int, n: int, intrinsics: Intrinsics | None) -> dict[str, torch.Tensor]:
        """Sample ``n`` (<= CHUNK) samples of chunk ``index`` and render them at ``intrinsics`` (None: no images).

        Returns CPU tensors: body_pose (n, 23, 3), viewpoint (n, 3), camera_joints (n, 24, 3) with the root at the
        camera distance, joints (n, 24, 3) root-relative, rotations (n, 24, 3, 3), and images (n, 3, H, W) uint8 and
        alpha (n, 1, H, W) float when rendered."""
        gen = chunk_generator(self.seed, index)
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                z = self.prior.sample(n, self.latent_dim, generator=gen)
                out = self.generator(z.to(self.device))
                body_pose, view = out.body_pose, out.viewpoint
                go = torch.zeros(n, 3, dtype=body_pose.dtype, device=body_pose.device)
                body = self.body_model.to(body_pose.device)(go, body_pose)
                cam, cam_rots = to_camera_frame(body.joints, body.rotations, view, self.distance)
                data = {"body_pose": body_pose, "viewpoint": view, "camera_joints": cam, "joints": root_relative(cam),
                        "rotations": camera_frame_rotations(go, body_pose, view)}
                if intrinsics is not None:
                    r = self.renderer(cam, cam_rots, intrinsics, subject=self.subject, generator=gen)
                    data["images"] = (r.images.clamp(0, 1) * 255).round().to(torch.uint8)
                    data["alpha"] = r.alpha
        finally:
            self.generator.train(was_training)
        return {k: v.detach().cpu() for k, v in data.items()}

    def in_memory(self, samples: int, intrinsics: Intrinsics) -> dict[str, torch.Tensor]:
        """All ``samples`` rendered at ``intrinsics``, in memory (the loop's fine-tuning data; keep it small)."""
        parts = [self.chunk(i, min(CHUNK, samples - s), intrinsics) for i, s in enumerate(range(0, samples, CHUNK))]
        keys = ("body_pose", "viewpoint", "images", "joints", "rotations")
        return {k: torch.cat([p[k] for p in parts]) for k in keys}


def spin_fields(chunk: dict[str, torch.Tensor], intrinsics: Intrinsics, distance: float) -> dict[str, np.ndarray]:
    """SPIN's per-sample arrays (and posegen's camera arrays) for one rendered chunk; see docs/EXPORT.md."""
    from .spin_data import person_box, spin_j24_from_smpl24, spin_part_from_smpl24

    n = len(chunk["body_pose"])
    cam = chunk["camera_joints"].double()
    part = spin_part_from_smpl24(project(cam, intrinsics), cam[..., 2], intrinsics.height, intrinsics.width)
    center, scale = person_box(part, intrinsics.height, intrinsics.width)
    # SPIN's pose: the global orientation in the camera frame (G's bodies stand upright), then the 23 body joints
    root = matrix_to_axis_angle(viewpoint_rotation(chunk["viewpoint"].double()))
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
        if not self.name or any(c in self.name for c in "/\\\0"):
            raise ConfigError(f"--name must be a plain dataset name (it names <name>_fits.npy); got {self.name!r}.")
        return self


def _marker(settings: ExportSettings, source: GeneratedSource, complete: bool, extra: dict[str, Any]) -> dict:
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
    source: GeneratedSource,
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
    from .spin_data import write_spin_annotations, write_static_fits

    settings = settings.check()
    folder = Path(folder)
    check_output_folder(folder, replace)
    partial = folder.with_name(folder.name + ".partial")
    say = log or (lambda msg: None)
    marker = _marker(settings, source, False, extra_info or {})
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

    intr = Intrinsics.framing(settings.size, source.distance)
    n = settings.samples
    width = max(6, len(str(n - 1)))
    names = np.array([f"images/{i:0{width}d}.png" for i in range(n)])
    shards = list(range(0, n, settings.shard_size))
    own_reporter = reporter is None
    reporter = reporter or Reporter()
    if own_reporter:
        reporter.__enter__()
    try:
        task = reporter.task(f"export {n} samples at {settings.size}x{settings.size}", n)
        done = sum(min(settings.shard_size, n - s) for k, s in enumerate(shards) if _shard_path(partial, k).is_file())
        if done:
            say(f"resuming the export in {partial}: {done} of {n} samples already written")
        reporter.update(task, done, None)
        t0, written = time.time(), 0
        with ThreadPoolExecutor(max_workers=2) as pool:
            for k, start in enumerate(shards):
                if _shard_path(partial, k).is_file():
                    continue
                stop = min(start + settings.shard_size, n)
                fields: list[dict[str, np.ndarray]] = []
                pending: list[Future] = []
                for s in range(start, stop, CHUNK):
                    m = min(CHUNK, stop - s)
                    chunk = source.chunk(s // CHUNK, m, intr if settings.write_images else None)
                    fields.append(spin_fields(chunk, intr, source.distance))
                    if settings.write_images:
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

    # all shards complete: merge, write SPIN's files, mark complete, rename into place
    parts = []
    for k in range(len(shards)):
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
    return folder


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


def export_run_dataset(run: Any) -> dict[str, torch.Tensor]:
    """The loop's dataset stage (``PoseGenRun.make_dataset``): the in-memory fine-tuning data at the loop's size and
    the exported ``dataset/`` at the export size, both from the same samples of G."""
    from .loop import stage_seed

    cfg, parts = run.cfg, run.parts
    seed = stage_seed(cfg.seed, "dataset")
    source = GeneratedSource(run.G, parts.prior, cfg.latent_dim, parts.renderer, parts.body_model,
                             cfg.camera_distance, cfg.subject, seed, run.device)
    data = source.in_memory(cfg.samples, parts.intrinsics)
    folder = run.run_dir / "dataset"
    if run.stage == "dataset" or not (folder / "annotations.npz").is_file():
        size = export_size_for(cfg, run.P)
        settings = ExportSettings(cfg.samples, size, seed, write_images=cfg.export_images)
        export_dataset(folder, source, settings, reporter=run.reporter, replace=True,
                       extra_info={"run": str(run.run_dir)}, log=run.log)
        run.log(f"dataset: {cfg.samples} samples at {size}x{size} written to {folder}")
    return data
