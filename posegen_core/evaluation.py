"""Standard evaluation of an estimator on SPIN's evaluation files (3DPW, Human3.6M P1/P2, MPI-INF-3DHP, posegen's own).

The protocol follows SPIN's ``eval.py``: crop every image by its npz center/scale to the estimator's input size,
predict, build the protocol's joints on both sides, subtract the pelvis, and report MPJPE and PA-MPJPE in millimetres
(plus PCK@150 mm and AUC). Predicted joints come from the SMPL mesh through ``J_regressor_h36m`` when the user gives
both (``smpl_model``, ``regressor``); otherwise from the estimator's SMPL-24 joints by the documented approximation
``spin_data.SMPL24_TO_J17`` -- those numbers are flagged as not comparable with published ones.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics, spin_data
from .body_models import SMPL_SOURCE, SkeletonBody, SMPLBody, find_smpl_file
from .errors import ConfigError, DataError
from .interfaces import Estimator, EstimatorOutput
from .validation import check_tensor

REGRESSOR_SOURCE = "J_regressor_h36m.npy (17 x 6890) ships with SPIN's data (fetch_data.sh) and HybrIK's model_files."

#: The original SMPL download's file names, accepted besides SMPL_<GENDER>.pkl/.npz.
_ORIGINAL_PREFIXES = {"neutral": "basicmodel_neutral_lbs", "male": "basicmodel_m_lbs", "female": "basicmodel_f_lbs"}


def find_smpl_files(path: str | Path) -> dict[str, Path]:
    """SMPL model files by gender: a file is the neutral model; a folder may hold SMPL_{NEUTRAL,MALE,FEMALE}.pkl/.npz
    (``body_models.find_smpl_file``) or the original basicModel_{neutral,m,f}_lbs_*.pkl names (also under smpl/)."""
    path = Path(path)
    if path.is_file():
        return {"neutral": path}
    if not path.is_dir():
        raise ConfigError(f"SMPL model not found: {path}. {SMPL_SOURCE}")
    found: dict[str, Path] = {}
    for gender, prefix in _ORIGINAL_PREFIXES.items():
        try:
            found[gender] = find_smpl_file(path, gender)
            continue
        except ConfigError:
            pass
        for folder in (path, path / "smpl"):
            hits = sorted(folder.glob("*.pkl")) if folder.is_dir() else []
            hits = [f for f in hits if f.name.lower().startswith(prefix)]
            if hits:
                found[gender] = hits[0]
                break
    if "neutral" not in found:
        raise ConfigError(
            f"no neutral SMPL model in {path}: expected SMPL_NEUTRAL.pkl (or .npz) or "
            f"basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, and SMPL_MALE / SMPL_FEMALE for 3DPW. {SMPL_SOURCE}"
        )
    return found


def load_regressor(path: str | Path, num_vertices: int | None = None) -> torch.Tensor:
    """Read ``J_regressor_h36m`` (17, V) from .npy (or a one-array .npz); check it fits the SMPL mesh."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"joint regressor not found: {path}. {REGRESSOR_SOURCE}")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if len(data.files) != 1:
                    raise ConfigError(
                        f"{path} holds {len(data.files)} arrays ({', '.join(data.files)}); expected only the regressor."
                    )
                data = data[data.files[0]]
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"could not read the joint regressor {path}: {type(e).__name__}: {e}. {REGRESSOR_SOURCE}"
        ) from None
    reg = np.asarray(data)
    if reg.ndim != 2 or reg.shape[0] != 17 or (num_vertices is not None and reg.shape[1] != num_vertices):
        want = f"(17, {num_vertices or 'V'})"
        raise ConfigError(
            f"{path} must be the H36M joint regressor of shape {want}; got {reg.shape}. {REGRESSOR_SOURCE}"
        )
    return torch.as_tensor(reg, dtype=torch.float32)


@dataclass
class JointSets:
    """Builds the protocol's evaluation joints (pelvis-relative, metres) for predictions and ground truth."""

    kind: spin_data.DatasetKind
    smpl: dict[str, SMPLBody] = field(default_factory=dict)  # by gender; "neutral" at least when given
    regressor: torch.Tensor | None = None  # (17, V)
    notes: list[str] = field(default_factory=list)

    @property
    def num_joints(self) -> int:
        return self.kind.num_joints

    @property
    def names(self) -> tuple[str, ...]:
        return spin_data.EVAL_JOINT_NAMES[: self.num_joints]

    def _from_mesh(self, vertices: torch.Tensor) -> torch.Tensor:
        assert self.regressor is not None
        h36m = torch.einsum("jv,bvc->bjc", self.regressor.to(vertices), vertices)
        h36m = h36m - h36m[:, :1]
        return h36m[:, list(spin_data.H36M_TO_J17[: self.num_joints])]

    def _from_smpl24(self, joints: torch.Tensor) -> torch.Tensor:
        joints = joints - joints[:, :1]
        return joints[:, list(spin_data.SMPL24_TO_J17[: self.num_joints])]

    @property
    def mesh_based(self) -> bool:
        return bool(self.smpl) and self.regressor is not None

    def prediction(self, out: EstimatorOutput) -> torch.Tensor:
        """Evaluation joints of a prediction: SMPL mesh -> regressor when possible, else the SMPL-24 approximation."""
        if self.mesh_based and out.rotations is not None:
            rot = out.rotations.float()
            body = self.smpl["neutral"].forward_rotmats(rot, None if out.betas is None else out.betas.float())
            return self._from_mesh(body.vertices).float()
        return self._from_smpl24(out.joints.float())

    def ground_truth(self, ann: spin_data.SpinAnnotations, index: np.ndarray) -> torch.Tensor:
        if self.kind.name != "3dpw":
            s = torch.as_tensor(ann.S[index], dtype=torch.float32)[..., :3]
            if self.kind.name == "posegen":  # SPIN's files are pelvis-centred already; centre ours to be sure
                s = s - s[:, spin_data.SPIN_J24_NAMES.index("pelvis_mpii")][:, None]
            return s[:, list(spin_data.J24_TO_J17[: self.num_joints])]
        pose = torch.as_tensor(ann.pose[index], dtype=torch.float32)
        betas = torch.as_tensor(ann.shape[index], dtype=torch.float32)
        out = torch.zeros(len(index), self.num_joints, 3)
        if not self.smpl:
            body = SkeletonBody()(pose[:, :3], pose[:, 3:].reshape(-1, 23, 3))
            return self._from_smpl24(body.joints)
        genders = np.array(["male" if g == "m" else "female" for g in ann.gender[index]])
        for gender in ("male", "female"):
            sel = np.flatnonzero(genders == gender)
            if len(sel) == 0:
                continue
            model = self.smpl.get(gender, self.smpl["neutral"])
            body = model(pose[sel, :3], pose[sel, 3:].reshape(-1, 23, 3), betas[sel])
            mesh = self.regressor is not None
            out[sel] = (self._from_mesh(body.vertices) if mesh else self._from_smpl24(body.joints)).float()
        return out


def build_joint_sets(
    kind: spin_data.DatasetKind, smpl_model: str | Path | None = None, regressor: str | Path | None = None
) -> JointSets:
    """Choose how joints are built for ``kind`` from what the user has, recording every approximation in ``notes``."""
    if regressor is not None and smpl_model is None:
        raise ConfigError("--regressor maps SMPL mesh vertices to joints, so it needs --smpl-model as well.")
    sets = JointSets(kind)
    if smpl_model is not None:
        files = find_smpl_files(smpl_model)
        genders = ("neutral", "male", "female") if kind.name == "3dpw" else ("neutral",)
        sets.smpl = {g: SMPLBody(files[g]) for g in genders if g in files}
        if kind.name == "3dpw" and not {"male", "female"} <= set(sets.smpl):
            sets.notes.append("3DPW ground truth used the neutral SMPL model (male/female models not found); "
                              "SPIN uses the gendered models.")
        if regressor is not None:
            sets.regressor = load_regressor(regressor, int(sets.smpl["neutral"].smpl.v_template.shape[0]))
    if not sets.mesh_based:
        sets.notes.append(
            f"joints: the {kind.num_joints} evaluation joints approximated by SMPL-24 joints (no SMPL mesh + "
            "J_regressor_h36m given); not comparable with published numbers."
        )
    if kind.name == "3dpw" and not sets.smpl:
        sets.notes.append("3DPW ground truth built on the SMPL-24 rest skeleton (no SMPL model): shape ignored.")
    return sets


@dataclass
class EvalResult:
    """Dataset-level numbers (``summary``: mm and percent), per-sample errors in metres, and the protocol notes."""

    kind: str
    summary: dict[str, Any]
    per_sample_mpjpe: np.ndarray
    per_sample_pa_mpjpe: np.ndarray
    notes: list[str]
    comparable: bool

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.kind, "comparable_with_literature": self.comparable, "notes": self.notes,
                **self.summary}


def evaluate(
    estimator: Estimator,
    kind: str | spin_data.DatasetKind,
    annotations: spin_data.SpinAnnotations,
    images_root: str | Path,
    *,
    batch_size: int = 32,
    smpl_model: str | Path | None = None,
    regressor: str | Path | None = None,
    limit: int | None = None,
    device: str | torch.device = "cpu",
    workers: int = 4,
    on_batch: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run ``estimator`` over ``annotations`` (crops at its ``input_size``) and compute the protocol's metrics.

    ``workers`` threads decode images; ``on_batch(done, total)`` reports progress.
    """
    if isinstance(kind, str):
        if kind not in spin_data.DATASET_KINDS:
            raise ConfigError(f"unknown dataset kind {kind!r}; expected one of: {', '.join(spin_data.DATASET_KINDS)}.")
        kind = spin_data.DATASET_KINDS[kind]
    if batch_size <= 0:
        raise ConfigError(f"batch size must be positive; got {batch_size}.")
    n = len(annotations) if limit is None else min(limit, len(annotations))
    if n == 0:
        raise DataError(f"{annotations.path} holds no samples to evaluate.")
    root = spin_data.check_images_root(images_root, annotations.imgname[:n])
    sets = build_joint_sets(kind, smpl_model, regressor)
    res = int(getattr(estimator, "input_size", 224))
    estimator = estimator.to(device).eval()
    preds, gts = [], []
    missing_rotations = False
    with ThreadPoolExecutor(max(1, workers)) as pool, torch.no_grad():
        for start in range(0, n, batch_size):
            index = np.arange(start, min(start + batch_size, n))
            images = spin_data.load_crops(root, annotations, index, res, pool if workers > 1 else None).to(device)
            out = estimator(images)
            check_tensor(out.joints, f"{type(estimator).__name__} joints", (len(index), 24, 3))
            out = EstimatorOutput(
                joints=out.joints.cpu(), rotations=None if out.rotations is None else out.rotations.cpu(),
                betas=None if out.betas is None else out.betas.cpu(),
            )
            missing_rotations |= out.rotations is None
            preds.append(sets.prediction(out))
            gts.append(sets.ground_truth(annotations, index))
            if on_batch is not None:
                on_batch(int(index[-1]) + 1, n)
    pred, gt = torch.cat(preds).double(), torch.cat(gts).double()
    summary = metrics.summarize(pred, gt, joint_names=sets.names)
    notes = list(sets.notes)
    if sets.mesh_based and missing_rotations:
        notes.append("the estimator gives no SMPL rotations; predictions used the SMPL-24 approximation.")
    return EvalResult(
        kind=kind.name, summary=summary, per_sample_mpjpe=metrics.mpjpe(pred, gt).numpy(),
        per_sample_pa_mpjpe=metrics.pa_mpjpe(pred, gt).numpy(), notes=notes, comparable=not notes,
    )
