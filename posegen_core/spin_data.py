"""SPIN's annotation format (npz) read and written, its evaluation files, its crop, and the evaluation joint sets.

SPIN (and code that trains on its data) keeps one npz per dataset with per-sample arrays: ``imgname`` (paths relative
to the dataset's image root), ``center`` (N, 2) and ``scale`` (N,) of the person box (side = 200 * scale pixels),
optionally ``pose`` (N, 72) SMPL axis-angle, ``shape`` (N, 10) betas, ``gender`` ('m'/'f'), ``S`` (N, 24, 4) 3D joints
in metres plus a confidence column, in SPIN's 24-joint order (below), and ``part`` (N, 24, 3) 2D joints. posegen
writes its generated datasets in the same layout (``write_spin_annotations``, with ``part``, the person box, ``has_smpl``
and the static fits file built here; docs/EXPORT.md) so SPIN's training code reads them.

Evaluation files (SPIN's ``data/dataset_extras``): ``3dpw_test.npz`` (pose, shape, gender), ``h36m_valid_protocol1.npz``
and ``h36m_valid_protocol2.npz`` (S), ``mpi_inf_3dhp_test.npz`` / ``mpi_inf_3dhp_valid.npz`` (S). The protocols
compare 14 joints (3DPW, H36M) or 17 (MPI-INF-3DHP) in the LSP-based order ``EVAL_JOINT_NAMES``.
"""

from __future__ import annotations

import zipfile
from concurrent.futures import Executor
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from . import skeleton
from .errors import ConfigError, DataError
from .io import atomic_savez

# ------------------------------------------------------------------------------------------------ joint sets
#: SPIN's 24-joint ground-truth order (the ``S`` and ``part`` arrays).
SPIN_J24_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist", "right_elbow",
    "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck_lsp", "head_top_lsp", "pelvis_mpii",
    "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m", "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)

#: The H36M 17 joints that ``J_regressor_h36m`` (17 x 6890) regresses from SMPL vertices.
H36M17_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle", "spine", "thorax",
    "jaw", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)

#: The 17 evaluation joints (the first 14 are the 3DPW/H36M protocol's), in SPIN's order.
EVAL_JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist", "right_elbow",
    "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head", "pelvis", "spine", "jaw",
)

#: Selectors into the evaluation order (SPIN's constants): from H36M-17 regressed joints and from ``S``.
H36M_TO_J17: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14: tuple[int, ...] = H36M_TO_J17[:14]
J24_TO_J17: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
J24_TO_J14: tuple[int, ...] = J24_TO_J17[:14]

#: The documented approximation when no SMPL mesh is available: SMPL-24 joints standing in for the 17 evaluation
#: joints (the first 14 are ``skeleton.SMPL24_TO_LSP14``; pelvis -> SMPL pelvis, spine -> spine2, and both head and
#: jaw -> SMPL's "head" joint, which sits at the base of the skull). Numbers made this way are not comparable with
#: published ones; reports say so.
SMPL24_TO_J17: tuple[int, ...] = skeleton.SMPL24_TO_LSP14 + (0, 6, 15)

#: The J24 slot SPIN calls "Jaw (H36M)": SMPL-24 has no jaw joint, so exports leave it empty (confidence 0).
JAW_SLOT = SPIN_J24_NAMES.index("jaw_h36m")

#: SPIN J24 slots that ``spin_j24_from_smpl24`` (and the exported ``part``) fill from SMPL-24 joints: the 16 evaluation
#: slots that have an SMPL-24 joint (every one but the jaw). The others get zeros and confidence 0.
J24_FROM_SMPL24: dict[int, int] = {
    j24: smpl for j24, smpl in zip(J24_TO_J17, SMPL24_TO_J17) if j24 != JAW_SLOT
}


def spin_j24_from_smpl24(joints: np.ndarray | torch.Tensor) -> np.ndarray:
    """SMPL-24 joints (N, 24, 3) -> SPIN's ``S`` (N, 24, 4): pelvis-relative metres plus confidence.

    The evaluation slots that SMPL-24 can fill (``J24_FROM_SMPL24``: limbs, neck, head, pelvis, spine) get the
    corresponding SMPL joint and confidence 1; slots with no SMPL-24 counterpart (head top, thorax, jaw, face points)
    are zero with confidence 0, as SPIN does for joints a dataset lacks.
    """
    j = _to_numpy(joints, "joints").astype(np.float64)
    if j.ndim != 3 or j.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise DataError(f"joints must have shape (N, 24, 3) in SMPL order; got {j.shape}.")
    j = j - j[:, :1]
    out = np.zeros((j.shape[0], 24, 4), dtype=np.float64)
    for slot, smpl in J24_FROM_SMPL24.items():
        out[:, slot, :3] = j[:, smpl]
        out[:, slot, 3] = 1.0
    return out


# ------------------------------------------------------------------------------------------------ dataset kinds
@dataclass(frozen=True)
class DatasetKind:
    """An evaluation protocol over a SPIN npz: which keys it needs and how many joints it compares."""

    name: str
    required: tuple[str, ...]
    num_joints: int
    files: str
    description: str


_BASE_KEYS = ("imgname", "center", "scale")

DATASET_KINDS: dict[str, DatasetKind] = {
    k.name: k
    for k in (
        DatasetKind("3dpw", _BASE_KEYS + ("pose", "shape", "gender"), 14, "3dpw_test.npz",
                    "3DPW test: ground truth from SMPL pose/shape through gendered SMPL and J_regressor_h36m"),
        DatasetKind("h36m-p1", _BASE_KEYS + ("S",), 14, "h36m_valid_protocol1.npz",
                    "Human3.6M protocol 1 (S9, S11, all cameras, every 5th frame)"),
        DatasetKind("h36m-p2", _BASE_KEYS + ("S",), 14, "h36m_valid_protocol2.npz",
                    "Human3.6M protocol 2 (S9, S11, camera 60457274, every 5th frame)"),
        DatasetKind("mpi-inf-3dhp", _BASE_KEYS + ("S",), 17, "mpi_inf_3dhp_test.npz or mpi_inf_3dhp_valid.npz",
                    "MPI-INF-3DHP test set, 17 joints, with PCK@150mm and AUC"),
        DatasetKind("posegen", _BASE_KEYS + ("S",), 14, "annotations.npz",
                    "a dataset written by posegen (S from SMPL-24 joints, see spin_j24_from_smpl24)"),
    )
}

SPIN_DATA_SOURCE = (
    "SPIN's evaluation files come from its data/dataset_extras (github.com/nkolot/SPIN, fetch_data.sh or "
    "datasets/preprocess/*.py run on the original datasets)."
)


def parse_dataset_spec(spec: str) -> tuple[DatasetKind, Path]:
    """``"KIND:FILE"`` (e.g. ``3dpw:data/3dpw_test.npz``) -> (kind, path), with errors that list the kinds."""
    kinds = ", ".join(DATASET_KINDS)
    if ":" not in spec:
        raise ConfigError(f"--dataset must be KIND:FILE (e.g. 3dpw:3dpw_test.npz); got {spec!r}. Kinds: {kinds}.")
    name, _, file = spec.partition(":")
    kind = DATASET_KINDS.get(name.strip().lower())
    if kind is None:
        raise ConfigError(f"unknown dataset kind {name!r} in --dataset {spec!r}; expected one of: {kinds}.")
    if not file:
        raise ConfigError(f"--dataset {spec!r} names no file; write it as {kind.name}:PATH/TO/{kind.files.split()[0]}.")
    return kind, Path(file)


# ------------------------------------------------------------------------------------------------ reading
@dataclass
class SpinAnnotations:
    """The arrays of one SPIN npz, validated: every per-sample array has the same first dimension N."""

    path: Path
    imgname: np.ndarray  # (N,) str
    center: np.ndarray  # (N, 2) float pixels (x, y)
    scale: np.ndarray  # (N,) float, box side / 200
    pose: np.ndarray | None = None  # (N, 72)
    shape: np.ndarray | None = None  # (N, 10)
    gender: np.ndarray | None = None  # (N,) str, 'm' / 'f'
    S: np.ndarray | None = None  # (N, 24, 4)
    part: np.ndarray | None = None  # (N, 24, 3)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.imgname.shape[0])


_SHAPES: dict[str, tuple[int, ...]] = {
    "center": (2,), "scale": (), "pose": (72,), "shape": (10,), "S": (24, 4), "part": (24, 3), "imgname": (),
    "gender": (),
}


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists etc.
        raise DataError(f"{name} could not be converted to an array: {e}") from None


def _check_array(name: str, a: np.ndarray, n: int, path: Path | str) -> np.ndarray:
    if name == "scale" and a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    want = _SHAPES[name]
    if a.shape != (n, *want):
        shape = "(N" + "".join(f", {d}" for d in want) + ")"
        raise DataError(f"{path}: '{name}' must have shape {shape} with N = {n} samples; got {a.shape}.")
    if name in ("imgname", "gender"):
        if a.dtype.kind not in "US":
            raise DataError(f"{path}: '{name}' must hold strings; got dtype {a.dtype}.")
        return a.astype(str)
    if a.dtype.kind not in "fiu":
        raise DataError(f"{path}: '{name}' must be numeric; got dtype {a.dtype}.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"{path}: '{name}' contains NaN or infinite values.")
    return a


def read_spin_annotations(
    path: str | Path, required: Sequence[str] = _BASE_KEYS, what: str = "SPIN npz"
) -> SpinAnnotations:
    """Read a SPIN-layout npz; missing ``required`` keys, wrong shapes and unreadable files raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}. {SPIN_DATA_SOURCE if what != 'SPIN npz' else ''}".strip())
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            missing = [k for k in required if k not in keys]
            if missing:
                raise DataError(
                    f"{path} lacks the key(s) {', '.join(missing)} needed for {what}; "
                    f"it has: {', '.join(keys) or '(none)'}. "
                    f"Expected SPIN's layout ({', '.join(required)}). Check that the file matches the dataset kind."
                )
            arrays = {k: z[k] for k in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(
            f"could not read {path} as an npz file ({type(e).__name__}: {e}); it may be truncated."
        ) from None
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise DataError(
            f"{path} holds object arrays that need pickle ({e}); re-save it with string/numeric arrays only."
        ) from None
    return _annotations_from_arrays(path, arrays)


def _annotations_from_arrays(path: Path | str, arrays: Mapping[str, np.ndarray]) -> SpinAnnotations:
    if "imgname" not in arrays:
        raise DataError(f"{path}: 'imgname' is required (the image paths, relative to the image root).")
    imgname = np.asarray(arrays["imgname"])
    if imgname.ndim != 1:
        raise DataError(f"{path}: 'imgname' must have shape (N,); got {imgname.shape}.")
    n = imgname.shape[0]
    known = {k: _check_array(k, np.asarray(v), n, path) for k, v in arrays.items() if k in _SHAPES}
    for k in ("center", "scale"):
        if k not in known:
            raise DataError(f"{path}: '{k}' is required (the person box: side = 200 * scale pixels around center).")
    if (known["scale"] <= 0).any():
        bad = int(np.flatnonzero(known["scale"] <= 0)[0])
        raise DataError(
            f"{path}: 'scale' must be positive (box side = 200 * scale pixels); sample {bad} has {known['scale'][bad]}."
        )
    extra = {k: np.asarray(v) for k, v in arrays.items() if k not in _SHAPES}
    return SpinAnnotations(path=Path(path), extra=extra, **known)


def load_evaluation_set(kind: str | DatasetKind, path: str | Path) -> SpinAnnotations:
    """Read one of SPIN's evaluation files, checking the keys its protocol needs (``DATASET_KINDS``)."""
    if isinstance(kind, str):
        if kind not in DATASET_KINDS:
            raise ConfigError(f"unknown dataset kind {kind!r}; expected one of: {', '.join(DATASET_KINDS)}.")
        kind = DATASET_KINDS[kind]
    return read_spin_annotations(path, kind.required, what=f"the {kind.name} evaluation file ({kind.files})")


# ------------------------------------------------------------------------------------------------ writing
def write_spin_annotations(
    path: str | Path,
    *,
    imgname: Sequence[str] | np.ndarray,
    center: Any,
    scale: Any,
    pose: Any = None,
    shape: Any = None,
    S: Any = None,
    gender: Sequence[str] | np.ndarray | None = None,
    part: Any = None,
    **extra_arrays: Any,
) -> Path:
    """Write a SPIN-layout npz atomically (torch tensors or numpy accepted); returns the path.

    ``pose`` may be (N, 72) or (N, 24, 3) axis-angle (global orientation first); ``S`` is (N, 24, 4) in SPIN's
    joint order (build it from SMPL-24 joints with ``spin_j24_from_smpl24``). Extra arrays (cameras, viewpoints,
    SMPL-24 joints ...) are stored under their own names; object arrays are refused because readers load without
    pickle.
    """
    path = Path(path)
    names = _to_numpy(imgname, "imgname")
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(
            "imgname must be a 1-D sequence of strings (paths relative to the image root); "
            f"got {names.shape} {names.dtype}."
        )
    arrays: dict[str, np.ndarray] = {"imgname": names.astype(str)}
    given = {"center": center, "scale": scale, "pose": pose, "shape": shape, "S": S, "gender": gender, "part": part}
    for k, v in given.items():
        if v is None:
            continue
        a = _to_numpy(v, k)
        if k == "pose" and a.ndim == 3 and a.shape[1:] == (24, 3):
            a = a.reshape(a.shape[0], 72)
        if k == "S" and a.ndim == 3 and a.shape[1:] == (24, 3):
            raise DataError(
                "S must be (N, 24, 4) in SPIN's joint order with a confidence column; for SMPL-24 joints use "
                "posegen_core.spin_data.spin_j24_from_smpl24(joints)."
            )
        arrays[k] = a
    for k, v in extra_arrays.items():
        if k in _SHAPES:
            raise DataError(f"'{k}' is a SPIN field; pass it as the keyword argument of that name.")
        a = _to_numpy(v, k)
        if a.dtype == object:
            raise DataError(
                f"extra array '{k}' has dtype object; store numbers or strings only (readers refuse pickle)."
            )
        arrays[k] = a
    checked = _annotations_from_arrays(path, arrays)  # same validation as reading: what we write, we can read
    out = {k: v for k, v in arrays.items() if k not in _SHAPES}
    for k in _SHAPES:
        v = getattr(checked, k)
        if v is not None:
            # box coordinates stay float64 (the crop truncates them to pixels); poses and joints are float32
            if k not in ("imgname", "gender"):
                v = v.astype(np.float64 if k in ("center", "scale") else np.float32)
            out[k] = v
    atomic_savez(path, **{k: out[k] for k in [*_SHAPES, *arrays] if k in out})
    return path


#: SPIN's preprocessing scripts (mpi_inf_3dhp.py, pw3d.py) make the person box 1.2 times the 2D joints' longer side.
BOX_FACTOR = 1.2


def spin_part_from_smpl24(pixels: Any, depth: Any, height: int, width: int) -> np.ndarray:
    """Projected SMPL-24 joints -> SPIN's ``part`` (N, 24, 3): pixel x, y and visibility in SPIN's J24 order.

    ``pixels`` (N, 24, 2) are image coordinates in which the image spans [0, width] x [0, height] (the top-left
    pixel's centre is (0.5, 0.5), as ``camera.project`` returns them): the frame in which SPIN's keypoint transform
    and its crop agree (a point at x maps to res / (200 s) * (x - c_x) + res / 2 in the crop). ``depth`` (N, 24) is
    the camera-frame z. Visibility is 1 for the slots of ``J24_FROM_SMPL24`` whose joint lies in front of the camera
    and inside the image; other slots are zero.
    """
    uv = _to_numpy(pixels, "pixels").astype(np.float64)
    z = _to_numpy(depth, "depth").astype(np.float64)
    if uv.ndim != 3 or uv.shape[1:] != (skeleton.NUM_JOINTS, 2) or z.shape != uv.shape[:2]:
        raise DataError(f"pixels must be (N, 24, 2) and depth (N, 24); got {uv.shape} and {z.shape}.")
    out = np.zeros((uv.shape[0], 24, 3), dtype=np.float64)
    for slot, smpl in J24_FROM_SMPL24.items():
        x, y = uv[:, smpl, 0], uv[:, smpl, 1]
        inside = (z[:, smpl] > 0) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        out[:, slot, :2] = uv[:, smpl]
        out[:, slot, 2] = inside
    return out


def person_box(part: Any, height: int, width: int, factor: float = BOX_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's person box from 2D joints, as its preprocessing scripts build it: centre of the visible joints' box,
    scale = ``factor`` x its longer side / 200 (box side = 200 * scale pixels).

    Clamped to the image: the centre lies inside it and the side is at most the image's longer side (a box wider
    than the frame would only add SPIN's zero padding). Samples with fewer than two visible joints get the whole
    frame. Returns center (N, 2) and scale (N,) as float64.
    """
    p = _to_numpy(part, "part").astype(np.float64)
    if p.ndim != 3 or p.shape[1:] != (24, 3):
        raise DataError(f"part must be (N, 24, 3) (x, y, visibility); got {p.shape}.")
    vis = p[..., 2] > 0
    big = np.float64(1e12)
    lo = np.where(vis[..., None], p[..., :2], big).min(1)
    hi = np.where(vis[..., None], p[..., :2], -big).max(1)
    few = vis.sum(1) < 2
    frame_centre = np.array([width / 2.0, height / 2.0])
    centre = np.where(few[:, None], frame_centre, (lo + hi) / 2.0)
    side = np.where(few, max(height, width), factor * np.max(np.where(few[:, None], 0.0, hi - lo), axis=1))
    side = np.clip(side, 1.0, max(height, width))
    centre = np.clip(centre, 0.0, [width, height])
    return centre, side / 200.0


def write_static_fits(path: str | Path, pose: Any, shape: Any) -> Path:
    """SPIN's static fits file (``<dataset>_fits.npy``, read by train/fits_dict.py): (N, 82) = pose (72) + betas (10)
    per sample, in the npz's order. Written atomically."""
    from .io import atomic_write_bytes
    import io as _io

    pose_a, shape_a = _to_numpy(pose, "pose").reshape(-1, 72), _to_numpy(shape, "shape").reshape(-1, 10)
    if len(pose_a) != len(shape_a):
        raise DataError(f"pose and shape must have the same number of samples; got {len(pose_a)} and {len(shape_a)}.")
    buf = _io.BytesIO()
    np.save(buf, np.concatenate([pose_a, shape_a], 1).astype(np.float32))
    atomic_write_bytes(buf.getvalue(), path)
    return Path(path)


# ------------------------------------------------------------------------------------------------ images and crop
def load_image(path: str | Path) -> torch.Tensor:
    """An RGB image file -> (3, H, W) float32 in [0, 1] (SPIN reads RGB and divides by 255)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}.")
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"could not read image {path}: {e}. The file may be truncated or not an image.") from None
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def crop_box(center: Sequence[float], scale: float) -> tuple[int, int, int, int]:
    """SPIN's crop window (x0, y0, x1, y1), 0-based, end-exclusive, for a box of side 200 * scale around ``center``.

    SPIN maps the 1-based corner pixels (1, 1) and (res + 1, res + 1) back to the image and truncates towards zero,
    which works out to x0 = trunc(cx - 100 * scale) and x1 = trunc(cx + 100 * scale) (likewise in y).
    """
    half = 100.0 * float(scale)
    if not half > 0:
        raise DataError(f"crop scale must be positive (box side = 200 * scale pixels); got {scale}.")
    cx, cy = float(center[0]), float(center[1])
    return int(cx - half), int(cy - half), int(cx + half), int(cy + half)


def crop(image: torch.Tensor, center: Sequence[float], scale: float, res: int) -> torch.Tensor:
    """SPIN's crop of a (3, H, W) image in [0, 1] to (3, res, res): zero padding outside, then resize.

    The resize is bilinear with antialiasing (the PIL bilinear filter of SPIN's ``scipy.misc.imresize``), computed in
    float so no 8-bit rounding happens.
    """
    if image.dim() != 3:
        raise DataError(f"crop expects one image (C, H, W); got shape {tuple(image.shape)}.")
    if res <= 0:
        raise DataError(f"crop resolution must be positive; got {res}.")
    x0, y0, x1, y1 = crop_box(center, scale)
    c, h, w = image.shape
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and x1 > x0 and y1 > y0:
        window = image[:, y0:y1, x0:x1]  # inside the image: no padding, no copy
    else:
        window = image.new_zeros(c, max(y1 - y0, 1), max(x1 - x0, 1))
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            window[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
    if window.shape[1:] == (res, res):
        return window.clone()
    resized = F.interpolate(window[None], size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].clamp(0, 1)


def check_images_root(root: str | Path, imgname: Sequence[str]) -> Path:
    """Fail early, naming the first missing files, when ``root`` is not the folder ``imgname`` is relative to."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"images root not found or not a folder: {root}. "
            "Pass the folder that the npz's imgname paths are relative to."
        )
    missing = [n for n in imgname if not (root / n).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(imgname)} images are missing under {root} (first: {root / missing[0]}). "
            "--images must be the folder that the npz's imgname paths are relative to "
            "(e.g. the 3DPW root that holds imageFiles/)."
        )
    return root


def load_crops(
    root: Path, ann: SpinAnnotations, index: Sequence[int], res: int, executor: Executor | None = None
) -> torch.Tensor:
    """Load and crop samples ``index`` of ``ann`` -> (B, 3, res, res) in [0, 1].

    Pass a thread pool as ``executor`` to decode images in parallel (PIL releases the GIL while decoding).
    """
    def one(i: int) -> torch.Tensor:
        return crop(load_image(root / ann.imgname[i]), ann.center[i], float(ann.scale[i]), res)

    crops = list(executor.map(one, index)) if executor is not None else [one(i) for i in index]
    return torch.stack(crops)
