"""Body models: the skeleton-only default, and SMPL through smplx when the user has the model files.

Both map (global_orient, body_pose, betas) to joints (B, 24, 3), global joint rotations (B, 24, 3, 3) and, for SMPL,
mesh vertices. Pelvis at the origin in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import skeleton
from .errors import ConfigError
from .kinematics import batch_rigid_transform, pose_to_rotations

SMPL_SOURCE = "Register at https://smpl.is.tue.mpg.de and download the SMPL model (.pkl or .npz)."


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


class SMPLBody(nn.Module):
    """SMPL through smplx (non-commercial licence; used only on this path). Joints depend on shape ``betas``."""

    def __init__(self, model_path: str | Path, gender: str = "neutral") -> None:
        super().__init__()
        path = Path(model_path)
        if not path.exists():
            raise ConfigError(f"SMPL model file not found: {path}. {SMPL_SOURCE}")
        try:
            import smplx
        except ImportError:  # pragma: no cover - smplx is a required dependency
            raise ConfigError("the SMPL body model needs smplx: pip install smplx") from None
        kwargs = {"gender": gender, "batch_size": 1}
        if path.is_file():
            kwargs["ext"] = path.suffix.lstrip(".")
        self.smpl = smplx.SMPL(str(path), **kwargs)

    def forward(
        self, global_orient: torch.Tensor, body_pose: torch.Tensor, betas: torch.Tensor | None = None
    ) -> BodyOutput:
        rots = pose_to_rotations(global_orient, body_pose)
        return self.forward_rotmats(rots, betas)

    def forward_rotmats(self, rotmats: torch.Tensor, betas: torch.Tensor | None = None) -> BodyOutput:
        b = rotmats.shape[0]
        dtype = self.smpl.shapedirs.dtype
        if betas is None:
            betas = torch.zeros(b, self.smpl.num_betas, dtype=dtype, device=rotmats.device)
        out = self.smpl(
            betas=betas.to(dtype), global_orient=rotmats[:, :1].to(dtype), body_pose=rotmats[:, 1:].to(dtype),
            pose2rot=False,
        )
        joints = out.joints[:, : skeleton.NUM_JOINTS]
        pelvis = joints[:, :1]
        _, glob = batch_rigid_transform(rotmats.to(dtype), joints[0] * 0)  # rotations do not depend on offsets
        return BodyOutput(joints - pelvis, glob, out.vertices - pelvis)


def create_body_model(smpl_model: str | Path | None = None, gender: str = "neutral") -> nn.Module:
    """The skeleton body by default; SMPL when a model file or folder is given."""
    return SkeletonBody() if smpl_model is None else SMPLBody(smpl_model, gender)
