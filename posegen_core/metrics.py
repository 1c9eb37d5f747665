"""3D pose metrics as the literature reports them: MPJPE, PA-MPJPE, PCK@150 mm and AUC (0..150 mm).

Every function is pure and batched: inputs are joints (B, J, 3) in metres (torch tensors or numpy arrays; a single
pose (J, 3) counts as B = 1), outputs are per-sample tensors (B,) so callers can average, filter or report per view.
Errors come back in metres; ``summarize`` converts to millimetres for reports (DESIGN: millimetres only in reported
metrics). The joints must already share a convention (e.g. both pelvis-relative, same joint set): use ``root=`` to
subtract a root joint here.

PA-MPJPE aligns each predicted pose to its ground truth with the similarity transform (scale, rotation with the
reflection fix, translation) that minimises the squared joint error, as SPIN's ``compute_similarity_transform`` and
HybrIK's evaluation do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ShapeError

#: PCK threshold of the MPI-INF-3DHP protocol, metres.
PCK_THRESHOLD = 0.150

#: AUC thresholds of the MPI-INF-3DHP protocol: 0, 5, ..., 150 mm (31 values), in metres.
AUC_THRESHOLDS: tuple[float, ...] = tuple(round(i * 0.005, 3) for i in range(31))


def _as_joints(x: object, name: str) -> torch.Tensor:
    """numpy or torch -> float tensor (B, J, 3); (J, 3) becomes (1, J, 3)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array of shape (B, J, 3); got {type(x).__name__}.")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ShapeError(f"{name} must have shape (B, J, 3) (or (J, 3) for one pose); got {tuple(x.shape)}.")
    if x.shape[1] == 0:
        raise ShapeError(f"{name} has no joints; pass at least one joint per pose.")
    if not bool(torch.isfinite(x).all()):
        raise ShapeError(f"{name} contains NaN or infinite values; check the predictions or annotations.")
    return x


def _pair(pred: object, gt: object, root: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = _as_joints(pred, "pred"), _as_joints(gt, "gt")
    if p.shape != g.shape:
        raise ShapeError(
            f"pred and gt must have the same shape (B, J, 3); got {tuple(p.shape)} and {tuple(g.shape)}. "
            "Select the same joint set (e.g. the 14 evaluation joints) on both sides."
        )
    dtype = torch.promote_types(p.dtype, g.dtype)
    p, g = p.to(dtype), g.to(device=p.device, dtype=dtype)
    if root is not None:
        if not -p.shape[1] <= root < p.shape[1]:
            raise ShapeError(f"root joint {root} is out of range for {p.shape[1]} joints.")
        p = p - p[:, root : root + 1 if root != -1 else None]
        g = g - g[:, root : root + 1 if root != -1 else None]
    return p, g


def per_joint_error(pred: object, gt: object, root: int | None = None) -> torch.Tensor:
    """Euclidean error of every joint, (B, J) metres (after subtracting joint ``root`` from both, if given)."""
    p, g = _pair(pred, gt, root)
    return (p - g).norm(dim=-1)


def mpjpe(pred: object, gt: object, root: int | None = None) -> torch.Tensor:
    """Mean per-joint position error per sample, (B,) metres."""
    return per_joint_error(pred, gt, root).mean(dim=-1)


@dataclass
class Similarity:
    """A per-sample similarity transform x -> scale * R x + t: scale (B,), rotation (B, 3, 3), translation (B, 3)."""

    scale: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform points (B, J, 3)."""
        return self.scale[:, None, None] * x @ self.rotation.transpose(1, 2) + self.translation[:, None]


def similarity_transform(pred: object, gt: object) -> Similarity:
    """The least-squares similarity transform taking each ``pred`` pose onto its ``gt`` (Umeyama's solution).

    Rotation from the SVD of the 3x3 cross-covariance, with the last singular direction flipped when the best
    orthogonal fit would be a reflection (a mirrored pose must not align to zero error). A pose with all joints at one
    point gets scale 0 (it maps to the ground-truth centroid).
    """
    p, g = _pair(pred, gt)
    work = torch.float64 if p.dtype != torch.float64 else p.dtype
    x, y = p.to(work), g.to(work)
    mu_x, mu_y = x.mean(1), y.mean(1)
    x0, y0 = x - mu_x[:, None], y - mu_y[:, None]
    cov = y0.transpose(1, 2) @ x0  # (B, 3, 3) = sum_j y_j x_j^T
    u, s, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    flip = torch.ones_like(s)
    flip[:, 2] = d
    rotation = u @ torch.diag_embed(flip) @ vh
    var_x = (x0 * x0).sum(dim=(1, 2))
    scale = (s * flip).sum(-1) / var_x.clamp_min(torch.finfo(work).tiny)
    scale = torch.where(var_x > 0, scale, torch.zeros_like(scale))
    translation = mu_y - scale[:, None] * (rotation @ mu_x[..., None])[..., 0]
    return Similarity(scale.to(p.dtype), rotation.to(p.dtype), translation.to(p.dtype))


def procrustes_align(pred: object, gt: object) -> torch.Tensor:
    """``pred`` (B, J, 3) after its per-sample similarity alignment onto ``gt``."""
    p, _ = _pair(pred, gt)
    return similarity_transform(pred, gt).apply(p)


def pa_mpjpe(pred: object, gt: object) -> torch.Tensor:
    """MPJPE after per-sample similarity Procrustes alignment (SPIN's "reconstruction error"), (B,) metres."""
    p, g = _pair(pred, gt)
    return mpjpe(procrustes_align(p, g), g)


def pck(pred: object, gt: object, threshold: float = PCK_THRESHOLD, root: int | None = None) -> torch.Tensor:
    """Fraction of joints whose error is at most ``threshold`` metres, per sample (B,) in [0, 1]."""
    if not threshold >= 0:
        raise ShapeError(f"PCK threshold must be a non-negative distance in metres; got {threshold}.")
    err = per_joint_error(pred, gt, root)
    return (err <= threshold).to(err.dtype).mean(dim=-1)


def auc(
    pred: object, gt: object, thresholds: Sequence[float] = AUC_THRESHOLDS, root: int | None = None
) -> torch.Tensor:
    """Area under the PCK curve: the mean PCK over ``thresholds`` (default 0..150 mm, step 5 mm), per sample (B,).

    A joint counts at a threshold when its error is at most that threshold, so a perfect prediction scores 1.
    """
    if len(thresholds) == 0:
        raise ShapeError("AUC needs at least one threshold (metres); the default is 0..0.150 step 0.005.")
    err = per_joint_error(pred, gt, root)
    t = torch.as_tensor(list(thresholds), dtype=err.dtype, device=err.device)
    return (err[..., None] <= t).to(err.dtype).mean(dim=(1, 2))


def summarize(
    pred: object, gt: object, pck_threshold: float = PCK_THRESHOLD, joint_names: Sequence[str] | None = None
) -> dict[str, object]:
    """Dataset-level numbers for a report: MPJPE and PA-MPJPE in mm, PCK and AUC in percent, per-joint MPJPE in mm.

    Means are over samples (every sample has the same number of joints, so this is also the mean over joints).
    """
    p, g = _pair(pred, gt)
    per_joint = per_joint_error(p, g)
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(p.shape[1])]
    if len(names) != p.shape[1]:
        raise ShapeError(f"{len(names)} joint names for {p.shape[1]} joints.")
    return {
        "samples": int(p.shape[0]),
        "joints": int(p.shape[1]),
        "mpjpe_mm": float(per_joint.mean()) * 1000.0,
        "pa_mpjpe_mm": float(pa_mpjpe(p, g).mean()) * 1000.0,
        f"pck{round(pck_threshold * 1000)}_percent": float(pck(p, g, pck_threshold).mean()) * 100.0,
        "auc_percent": float(auc(p, g).mean()) * 100.0,
        "per_joint_mpjpe_mm": {n: float(v) * 1000.0 for n, v in zip(names, per_joint.mean(0))},
    }
