"""Body models: the skeleton-only default, and SMPL through smplx when the user has the model files.

Both map (global_orient, body_pose, betas) to joints (B, 24, 3), global joint rotations (B, 24, 3, 3) and, for SMPL,
mesh vertices. Pelvis at the origin in both.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import skeleton
from .errors import CheckpointError, ConfigError, ShapeError
from .io import load_model_pickle
from .kinematics import batch_rigid_transform, pose_to_rotations
from .validation import check_tensor

SMPL_SOURCE = "Register at https://smpl.is.tue.mpg.de and download the SMPL model (.pkl or .npz)."

#: Arrays an SMPL model file holds (the official .pkl and the .npz conversions use the same names).
SMPL_KEYS: tuple[str, ...] = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass
class BodyOutput:
    joints: torch.Tensor  # (B, 24, 3)
    rotations: torch.Tensor  # (B, 24, 3, 3) global rotations
    vertices: torch.Tensor | None = None  # (B, V, 3)


class SkeletonBody(nn.Module):
    """The default body: the fixed SMPL neutral rest skeleton (no shape), pure forward kinematics."""

    def __init__(self, rest_joints: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("rest", skeleton.rest_joints() if rest_joints is None else rest_joints.clone(), persistent=False)

    def forward(
        self, global_orient: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor | None = None
    ) -> BodyOutput:
        rots = pose_to_rotations(global_orient, body_pose)
        joints, glob = batch_rigid_transform(rots, self.rest.to(rots.dtype))
        return BodyOutput(joints, glob)

    def forward_rotmats(self, rotmats: torch.Tensor, betas: torch.Tensor | None = None) -> BodyOutput:
        joints, glob = batch_rigid_transform(rotmats, self.rest.to(rotmats.dtype))
        return BodyOutput(joints, glob)


def find_smpl_file(model_path: str | Path, gender: str = "neutral") -> Path:
    """Resolve a user's SMPL path: a .pkl/.npz file, or a folder holding SMPL_<GENDER>.pkl/.npz (also under smpl/)."""
    path = Path(model_path)
    if path.is_file():
        return path
    if path.is_dir():
        names = [f"SMPL_{gender.upper()}.{ext}" for ext in ("pkl", "npz")]
        candidates = [folder / n for folder in (path, path / "smpl") for n in names]
        for c in candidates:
            if c.is_file():
                return c
        raise ConfigError(
            f"no SMPL model for gender '{gender}' in {path}: looked for {', '.join(str(c) for c in candidates)}. "
            f"Pass the model file itself, or rename it to {names[0]}. {SMPL_SOURCE}"
        )
    raise ConfigError(f"SMPL model file not found: {path}. {SMPL_SOURCE}")


def load_smpl_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read the SMPL arrays from an official-layout .pkl or an .npz, checking names and shapes."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as e:
            raise ConfigError(f"could not read SMPL model {path}: {type(e).__name__}: {e}. {SMPL_SOURCE}") from None
    else:
        try:
            raw = load_model_pickle(path, what="SMPL model")  # restricted: never runs code from the file
        except CheckpointError as e:
            raise ConfigError(f"{e} {SMPL_SOURCE}") from None
    missing = [k for k in SMPL_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{path} is not an SMPL model: missing {', '.join(missing)} (expected {', '.join(SMPL_KEYS)}).")
    arrays: dict[str, np.ndarray] = {}
    for k in SMPL_KEYS:
        v = raw[k]
        if hasattr(v, "toarray"):  # the official J_regressor is a scipy sparse matrix
            v = v.toarray()
        arrays[k] = np.asarray(v)
        if arrays[k].dtype.kind not in "fiu" or not np.isfinite(arrays[k]).all():
            raise ConfigError(
                f"{path}: SMPL array {k} must hold finite numbers; got dtype {arrays[k].dtype}"
                f"{' with NaN/inf' if arrays[k].dtype.kind == 'f' else ''}. {SMPL_SOURCE}"
            )
    v_count = arrays["v_template"].shape[0]
    expected = {
        "v_template": (v_count, 3), "shapedirs": (v_count, 3, None), "posedirs": (v_count, 3, 9 * skeleton.NUM_BODY_JOINTS),
        "J_regressor": (skeleton.NUM_JOINTS, v_count), "weights": (v_count, skeleton.NUM_JOINTS),
        "kintree_table": (2, skeleton.NUM_JOINTS), "f": (None, 3),
    }
    for k, shape in expected.items():
        got = arrays[k].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ConfigError(f"{path}: SMPL array {k} has shape {got}; expected {want} for a {v_count}-vertex SMPL model.")
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # stored as the unsigned 2**32 - 1
    if tuple(int(p) for p in parents) != skeleton.PARENTS:
        raise ConfigError(f"{path}: the kinematic tree {parents.tolist()} is not SMPL's 24-joint tree.")
    return arrays


class SMPLBody(nn.Module):
    """SMPL through smplx (non-commercial licence; used only on this path). Joints depend on shape ``betas``.

    ``model_path`` is the SMPL .pkl (official layout) or .npz, or a folder holding ``SMPL_<GENDER>.pkl``/``.npz``.
    posegen reads the arrays itself (so both formats work and bad files give clear errors) and uses smplx's linear
    blend skinning for the mesh.
    """

    def __init__(self, model_path: str | Path, gender: str = "neutral", dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        path = find_smpl_file(model_path, gender)
        arrays = load_smpl_arrays(path)
        try:
            import smplx
            from smplx.utils import Struct
        except ImportError:  # pragma: no cover - smplx is a required dependency
            raise ConfigError("the SMPL body model needs smplx: pip install smplx") from None
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-component models
            self.smpl = smplx.SMPL(
                str(path), data_struct=Struct(**arrays), gender=gender, batch_size=1, dtype=dtype,
                num_betas=arrays["shapedirs"].shape[-1],
            )
        self.path = path

    @property
    def num_betas(self) -> int:
        return int(self.smpl.num_betas)

    @property
    def faces(self) -> torch.Tensor:
        """Mesh triangles (F, 3), vertex indices."""
        return self.smpl.faces_tensor

    def forward(
        self, global_orient: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor | None = None
    ) -> BodyOutput:
        rots = pose_to_rotations(global_orient, body_pose)
        return self.forward_rotmats(rots, betas)

    def forward_rotmats(self, rotmats: torch.Tensor, betas: torch.Tensor | None = None) -> BodyOutput:
        """Local rotations (B, 24, 3, 3) and betas (B, <= num_betas; zero-padded) -> pelvis-relative joints and mesh."""
        from smplx.lbs import lbs

        check_tensor(rotmats, "rotmats", (None, skeleton.NUM_JOINTS, 3, 3))
        b = rotmats.shape[0]
        dtype = self.smpl.shapedirs.dtype
        if betas is None:
            betas = torch.zeros(b, self.num_betas, dtype=dtype, device=rotmats.device)
        check_tensor(betas, "betas", (b, None), hint=f"One row of at most {self.num_betas} shape coefficients per pose.")
        if betas.shape[1] > self.num_betas:
            raise ShapeError(f"betas has {betas.shape[1]} coefficients; this SMPL model has {self.num_betas}.")
        betas = torch.nn.functional.pad(betas.to(dtype), (0, self.num_betas - betas.shape[1]))
        rotmats = rotmats.to(dtype)
        s = self.smpl
        vertices, joints = lbs(
            betas, rotmats, s.v_template, s.shapedirs, s.posedirs, s.J_regressor, s.parents, s.lbs_weights,
            pose2rot=False,
        )
        pelvis = joints[:, :1]
        _, glob = batch_rigid_transform(rotmats, torch.zeros_like(joints[0]))  # rotations do not depend on offsets
        return BodyOutput(joints - pelvis, glob, vertices - pelvis)


def create_body_model(smpl_model: str | Path | None = None, gender: str = "neutral") -> SkeletonBody | SMPLBody:
    """The skeleton body by default; SMPL when a model file or folder is given."""
    return SkeletonBody() if smpl_model is None else SMPLBody(smpl_model, gender)
