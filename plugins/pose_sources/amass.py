"""The ``amass`` pose source: AMASS npz files (SMPL, SMPL-H or SMPL-X axis-angle per frame), one take per file.

AMASS stores ``poses`` (N, 72) for SMPL, (N, 156) for SMPL-H (root, 21 body joints, 30 hand joints) or (N, 165) for
SMPL-X, with ``mocap_framerate``, ``trans`` and ``betas``. Body joints 1-21 are SMPL's joints 1-21 in every layout;
SMPL's hand joints 22 and 23 (absent from SMPL-H/X, whose hands are articulated separately) are set to zero.

World frame: AMASS is Z up; posegen's body frame is SMPL's, y up. The root orientation is re-expressed in a y-up
world by left-multiplying it with the rotation of -90 degrees about x (which takes +z to +y and +y to -z), so a
subject standing upright in AMASS stands upright in posegen; the heading is kept (AMASS's -y becomes posegen's +z).
Body joint rotations are relative to their parents and need no change.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import posegen_core as pg

from .bvh import check_subsampling, select_takes

#: Number of leading axis-angle triplets that are SMPL's root + body joints, per AMASS layout (poses width).
_BODY_TRIPLETS = {72: 24, 156: 22, 165: 22}

#: AMASS (Z up) -> posegen (Y up): -90 degrees about x.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def find_npz_files(path: str | Path) -> tuple[Path, list[Path]]:
    """A .npz file, or a folder searched recursively (AMASS nests dataset/subject/take), sorted."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.parent, [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.npz") if f.is_file() and f.name != "shape.npz")
        if not files:
            raise pg.DataError(f"no .npz files under {p}. Pass an AMASS .npz file or a folder holding them.")
        return p, files
    raise pg.DataError(
        f"AMASS path not found: {p}. Download AMASS (SMPL-H or SMPL-X npz) from https://amass.is.tue.mpg.de "
        "(free registration) and pass the file or folder."
    )


def read_amass_file(path: Path, step: int | None, fps: float | None, max_frames: int | None,
                    up: str = "z") -> tuple[torch.Tensor, torch.Tensor, float]:
    """(global_orient (N, 3), body_pose (N, 23, 3), source fps) of one AMASS file, subsampled, in posegen's frame."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "poses" not in keys:
                raise pg.DataError(
                    f"{path} has no 'poses' array (keys: {sorted(keys)}). Expected an AMASS motion file with "
                    "poses (N, 72|156|165), mocap_framerate, trans and betas."
                )
            poses = np.asarray(data["poses"])
            rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in keys), None)
            rate_raw = np.asarray(data[rate_key]) if rate_key else None
            trans = np.asarray(data["trans"]) if "trans" in keys else None
    except pg.DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise pg.DataError(
            f"could not read AMASS file {path}: {type(e).__name__}: {e}. The file may be truncated or not an npz; "
            "download it again."
        ) from None
    if poses.ndim != 2 or poses.shape[1] not in _BODY_TRIPLETS:
        raise pg.DataError(
            f"{path}: 'poses' has shape {poses.shape}; expected (N, 72) SMPL, (N, 156) SMPL-H or (N, 165) SMPL-X "
            "axis-angle per frame."
        )
    if poses.shape[0] == 0:
        raise pg.DataError(f"{path}: 'poses' holds no frames. Remove the file or pass another one.")
    if not np.issubdtype(poses.dtype, np.floating) or not np.isfinite(poses).all():
        raise pg.DataError(f"{path}: 'poses' must hold finite floating-point axis-angle values.")
    if trans is not None and (trans.ndim != 2 or trans.shape[0] != poses.shape[0]):
        raise pg.DataError(
            f"{path}: 'trans' has shape {trans.shape} but 'poses' has {poses.shape[0]} frames; expected (N, 3) with the "
            "same N. The file is damaged; download it again."
        )
    rate = 0.0
    if rate_raw is not None:
        if rate_raw.size != 1 or rate_raw.dtype.kind not in "fiu" or not math.isfinite(float(rate_raw.reshape(-1)[0])) \
                or float(rate_raw.reshape(-1)[0]) <= 0:
            raise pg.DataError(
                f"{path}: '{rate_key}' is {rate_raw.tolist()!r}; expected the capture rate in frames per second (a "
                "positive number). Pass step=K to subsample without it, or fix the file."
            )
        rate = float(rate_raw.reshape(-1)[0])
    if step is None and fps:
        if rate_raw is None:
            raise pg.DataError(
                f"{path} has no mocap_framerate, so fps={fps:g} cannot choose which frames to keep; pass step=K "
                "(keep every K-th frame) or fps=None (keep all)."
            )
        step = max(1, int(round(rate / fps)))
    step = step or 1
    poses = poses[::step]
    if max_frames is not None:
        poses = poses[:max_frames]
    n_body = _BODY_TRIPLETS[poses.shape[1]]
    aa = np.zeros((poses.shape[0], 24, 3), dtype=np.float64)
    aa[:, :n_body] = poses[:, : 3 * n_body].reshape(-1, n_body, 3)
    root = torch.from_numpy(aa[:, 0])
    if up == "z":
        r = torch.from_numpy(Z_UP_TO_Y_UP) @ pg.rotations.axis_angle_to_matrix(root)
        root = pg.rotations.matrix_to_axis_angle(r)
    elif up != "y":
        raise pg.ConfigError(f"up must be 'z' (AMASS) or 'y' (already in SMPL's y-up frame); got {up!r}.")
    return root.float(), torch.from_numpy(aa[:, 1:]).float(), rate


class AMASSPoseSource(pg.PoseSource):
    """Real poses from AMASS npz files (SMPL/SMPL-H/SMPL-X axis-angle); one take per file."""

    name = "amass"

    def __init__(
        self,
        path: str | Path | None = None,
        fps: float | None = 30.0,
        step: int | None = None,
        max_frames: int | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        up: str = "z",
    ) -> None:
        """``path``: an AMASS .npz file or a folder (searched recursively). ``fps``: target rate (every k-th frame,
        k from ``mocap_framerate``); ``step`` sets k directly. ``max_frames`` per take. ``include``/``exclude``: shell
        patterns on take names (paths relative to the folder, without .npz). ``up``: 'z' for AMASS, 'y' if the
        files are already y-up."""
        if path is None:
            raise pg.ConfigError(
                "the amass pose source needs path=... (an AMASS .npz file or a folder of them). AMASS is at "
                "https://amass.is.tue.mpg.de (free registration)."
            )
        check_subsampling(fps, step, max_frames)
        if up not in ("z", "y"):
            raise pg.ConfigError(f"up must be 'z' (AMASS) or 'y'; got {up!r}.")
        self.path, self.fps, self.up = path, fps, up
        self.step = None if step is None else int(step)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.include, self.exclude = include, exclude
        self.source_fps: dict[str, float] = {}
        self._cache: pg.PoseSet | None = None

    def load(self) -> pg.PoseSet:
        if self._cache is not None:
            return self._cache
        root, files = find_npz_files(self.path)
        named = [(f.relative_to(root).with_suffix("").as_posix(), f) for f in files]
        kept = set(select_takes([n for n, _ in named], self.include, self.exclude))
        named = [(n, f) for n, f in named if n in kept]
        if not named:
            raise pg.DataError(
                f"no AMASS take under {self.path} matches include={self.include!r} exclude={self.exclude!r}."
            )
        sets = []
        for name, f in named:
            go, bp, rate = read_amass_file(f, self.step, self.fps, self.max_frames, self.up)
            self.source_fps[name] = rate
            sets.append(pg.PoseSet(go, bp, np.zeros(len(go), dtype=np.int64), [name]))
        self._cache = pg.PoseSet.concatenate(sets)
        return self._cache


@pg.hookimpl
def posegen_register_pose_sources(register):
    register(
        "amass", AMASSPoseSource,
        description="AMASS npz motion files (SMPL/SMPL-H/SMPL-X axis-angle, Z-up converted to y-up); path=FILE|FOLDER",
    )
