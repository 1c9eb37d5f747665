"""The ``bvh`` pose source: BVH motion capture (e.g. CMU) retargeted onto posegen's SMPL-24 skeleton.

Each file is one take, named by its file stem. Rigs are detected from joint names (three built in) or described by
the user in a JSON/TOML file (``bvh_rigs.py``). Frames are subsampled while reading, and a calibration T-pose that
some converters put before the motion is skipped.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import posegen_core as pg
from posegen_core.io import atomic_savez

from .bvh_format import BVHMotion, forward_kinematics, read_bvh
from .bvh_rigs import Rig, resolve_rig
from .retarget import RetargetPlan, plan_retarget, retarget

#: Bump when retargeting changes, so that cached takes are recomputed.
CACHE_VERSION = 1

#: A first frame whose limb directions jump by more than this to the second frame is a calibration pose, not motion.
CALIBRATION_JUMP_DEGREES = 45.0


def find_bvh_files(path: str | Path) -> list[Path]:
    """A .bvh file, a folder of them (sorted, not recursive), or a glob pattern -> the files, sorted."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".bvh" and f.is_file())
        if not files:
            raise pg.DataError(f"no .bvh files in the folder {p}. Pass a folder holding .bvh files, a file, or a glob.")
        return files
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(p)) if f.lower().endswith(".bvh"))
        if not files:
            raise pg.DataError(f"the pattern {path} matches no .bvh files.")
        return files
    raise pg.DataError(f"BVH path not found: {p}. Pass a .bvh file, a folder of them, or a glob such as 'mocap/*.bvh'.")


def _patterns(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def check_subsampling(fps: float | None, step: int | None, max_frames: int | None) -> None:
    """The frame-subsampling options shared by the mocap pose sources."""
    if fps is not None and not fps > 0:
        raise pg.ConfigError(f"fps must be positive; got {fps}.")
    if step is not None and int(step) < 1:
        raise pg.ConfigError(f"step must be a positive integer; got {step}.")
    if max_frames is not None and int(max_frames) < 1:
        raise pg.ConfigError(f"max_frames must be a positive integer; got {max_frames}.")


def select_takes(names: Sequence[str], include: str | Sequence[str] | None, exclude: str | Sequence[str] | None) -> list[str]:
    """Take names kept by shell-style ``include`` patterns (all when none) minus ``exclude`` patterns."""
    inc, exc = _patterns(include), _patterns(exclude)
    kept = [n for n in names if not inc or any(fnmatch.fnmatchcase(n, p) for p in inc)]
    return [n for n in kept if not any(fnmatch.fnmatchcase(n, p) for p in exc)]


def read_cmu_index(folder: str | Path) -> dict[str, dict[str, object]]:
    """The take metadata of a CMU folder's ``index.csv`` (file, subject, trial, description, source_fps), keyed by
    take name (the file stem). Empty when the folder has no index."""
    index = Path(folder) / "index.csv"
    if not index.is_file():
        return {}
    out: dict[str, dict[str, object]] = {}
    with index.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row.get("file"):
                continue
            stem = Path(row["file"]).stem
            out[stem] = {
                "file": row["file"], "subject": int(row.get("subject") or 0), "trial": int(row.get("trial") or 0),
                "description": row.get("description", ""), "source_fps": float(row.get("source_fps") or 0.0),
            }
    return out


def calibration_frames(head: np.ndarray, motion: BVHMotion, plan: RetargetPlan) -> int:
    """1 when the first frame is a calibration pose (its limbs jump to the second frame), else 0.

    ``head`` holds the file's first three frames at its own rate.
    """
    if head.shape[0] < 3:
        return 0
    pos, _ = forward_kinematics(motion.skeleton, head[:3], list(plan.mapped.values()))
    dirs = []
    for j, c in plan.bone_child.items():
        d = pos[plan.mapped[c]] - pos[plan.mapped[j]]
        dirs.append(d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12))
    if not dirs:
        return 0
    d = np.stack(dirs, 1)
    jump = np.degrees(np.arccos(np.clip((d[1:] * d[:-1]).sum(-1), -1.0, 1.0))).max(1)
    return int(jump[0] > CALIBRATION_JUMP_DEGREES and jump[0] > 4.0 * jump[1])


@dataclass
class TakeInfo:
    """What was read from one file: enough to split by take, subject or motion type."""

    name: str
    path: Path
    rig: str
    frames: int  # frames kept
    source_frames: int
    source_fps: float
    fps: float
    skipped_calibration: int
    metadata: dict[str, object]


class BVHPoseSource(pg.PoseSource):
    """Real poses from BVH motion capture (CMU and other rigs), retargeted to SMPL-24; one take per file."""

    name = "bvh"

    def __init__(
        self,
        path: str | Path | None = None,
        rig: str | Path | Rig = "auto",
        fps: float | None = 30.0,
        step: int | None = None,
        max_frames: int | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        skip_calibration: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        """``path``: a .bvh file, a folder or a glob. ``fps``: target frame rate (every k-th frame, k from the
        file's rate); ``step`` overrides it with an explicit k. ``max_frames``: per take, after subsampling.
        ``include``/``exclude``: shell patterns on take names (file stems), comma-separated or a list.
        ``cache_dir``: keep retargeted takes there (npz, keyed by file size/mtime and these options) so later loads
        skip parsing and retargeting."""
        if path is None:
            raise pg.ConfigError(
                "the bvh pose source needs path=... (a .bvh file, a folder of them, or a glob), e.g. "
                "--pose-source bvh with pose_source_options {path = 'mocap/cmu'}."
            )
        check_subsampling(fps, step, max_frames)
        self.path = path
        self.rig = rig
        self.fps = fps
        self.step = None if step is None else int(step)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.include = include
        self.exclude = exclude
        self.skip_calibration = skip_calibration
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.takes: list[TakeInfo] = []
        self._cache: pg.PoseSet | None = None

    def files(self) -> list[Path]:
        files = find_bvh_files(self.path)
        kept = set(select_takes([f.stem for f in files], self.include, self.exclude))
        return [f for f in files if f.stem in kept]

    def load(self) -> pg.PoseSet:
        if self._cache is not None:
            return self._cache
        files = self.files()
        if not files:
            raise pg.DataError(
                f"no BVH take under {self.path} matches include={self.include!r} exclude={self.exclude!r}. "
                "Take names are file stems, e.g. include='002_*'."
            )
        plans: dict[tuple, RetargetPlan] = {}
        sets: list[pg.PoseSet] = []
        self.takes = []
        indices: dict[Path, dict[str, dict[str, object]]] = {}
        for f in files:
            cached = self._read_cache(f)
            if cached is None:
                cached = self._load_file(f, plans)
                self._write_cache(f, *cached)
            global_orient, body_pose, info = cached
            if len(global_orient) == 0:
                continue
            n = len(global_orient)
            sets.append(pg.PoseSet(global_orient, body_pose, np.zeros(n, dtype=np.int64), [f.stem]))
            meta = indices.setdefault(f.parent, read_cmu_index(f.parent)).get(f.stem, {})
            self.takes.append(TakeInfo(f.stem, f, info["rig"], n, info["source_frames"], info["source_fps"],
                                       info["fps"], info["skipped_calibration"], dict(meta)))
        if not sets:
            raise pg.DataError(f"the BVH takes under {self.path} hold no frames after skipping and subsampling.")
        self._cache = pg.PoseSet.concatenate(sets)
        return self._cache

    def _load_file(self, f: Path, plans: dict[tuple, RetargetPlan]) -> tuple[torch.Tensor, torch.Tensor, dict]:
        cap = None if self.max_frames is None else self.max_frames + 1
        motion = read_bvh(f, step=self.step or 1, max_frames=cap, head=3, target_fps=None if self.step else self.fps)
        source_fps = motion.step / motion.frame_time if motion.frame_time > 0 else 0.0
        rig = resolve_rig(self.rig, motion.skeleton.names, f)
        key = (rig.name, tuple(motion.skeleton.names), motion.skeleton.offsets.tobytes())
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = plan_retarget(motion.skeleton, rig)
        assert motion.head is not None
        skip = calibration_frames(motion.head, motion, plan) if self.skip_calibration else 0
        values = motion.values[skip:][: self.max_frames]
        info = {"rig": rig.name, "source_frames": motion.total_frames, "source_fps": source_fps,
                "fps": source_fps / motion.step, "skipped_calibration": skip}
        if values.shape[0] == 0:
            return torch.zeros(0, 3), torch.zeros(0, 23, 3), info
        result = retarget(plan, values)
        return result.global_orient, result.body_pose, info

    # -- cache: retargeted takes keyed by the file's identity and every option that changes the result ------------
    def _cache_path(self, f: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = f.stat()
        rig = self.rig
        if isinstance(rig, Rig):
            rig_key = repr(rig)
        elif Path(str(rig)).is_file():
            rig_key = hashlib.sha1(Path(str(rig)).read_bytes()).hexdigest()
        else:
            rig_key = str(rig)
        key = json.dumps([CACHE_VERSION, str(f.resolve()), stat.st_size, stat.st_mtime_ns, rig_key, self.fps,
                          self.step, self.max_frames, self.skip_calibration])
        return Path(self.cache_dir) / f"{f.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"

    def _read_cache(self, f: Path) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
        path = self._cache_path(f)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                info = json.loads(str(data["info"]))
                return torch.from_numpy(data["global_orient"]), torch.from_numpy(data["body_pose"]), info
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a damaged cache entry is simply recomputed

    def _write_cache(self, f: Path, global_orient: torch.Tensor, body_pose: torch.Tensor, info: dict) -> None:
        path = self._cache_path(f)
        if path is not None:
            atomic_savez(path, global_orient=global_orient.numpy(), body_pose=body_pose.numpy(),
                               info=np.array(json.dumps(info)))


@pg.hookimpl
def posegen_register_pose_sources(register):
    register(
        "bvh", BVHPoseSource,
        description="BVH motion capture (CMU rigs, Character Creator, or a rig described in JSON/TOML), "
        "retargeted to SMPL-24; path=FILE|FOLDER|GLOB",
    )


__all__ = ["BVHPoseSource", "TakeInfo", "calibration_frames", "find_bvh_files", "read_cmu_index", "select_takes"]
