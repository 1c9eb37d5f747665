"""Forward kinematics of the SMPL-24 skeleton as pure functions (in the spirit of smplx's lbs module)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import skeleton
from .rotations import axis_angle_to_matrix
from .validation import check_tensor


def batch_rigid_transform(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: Sequence[int] = skeleton.PARENTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a skeleton from local joint rotations.

    Args:
        rotations: (B, J, 3, 3) local rotations, joint 0 the global orientation.
        rest_joints: (J, 3) or (B, J, 3) rest joint positions; the root stays where it is.
        parents: parent index per joint (root -1), parents before children.

    Returns:
        joints (B, J, 3) posed positions and global rotations (B, J, 3, 3).
    """
    b, j = rotations.shape[:2]
    if rest_joints.dim() == 2:
        rest_joints = rest_joints.expand(b, -1, -1)
    glob: list[torch.Tensor] = []
    pos: list[torch.Tensor] = []
    for i in range(j):
        p = parents[i]
        if p < 0:
            glob.append(rotations[:, i])
            pos.append(rest_joints[:, i])
        else:
            offset = rest_joints[:, i] - rest_joints[:, p]
            glob.append(glob[p] @ rotations[:, i])
            pos.append(pos[p] + (glob[p] @ offset[..., None])[..., 0])
    return torch.stack(pos, 1), torch.stack(glob, 1)


def pose_to_rotations(global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
    """Axis-angle (B, 3) and (B, 23, 3) -> local rotation matrices (B, 24, 3, 3)."""
    check_tensor(global_orient, "global_orient", (None, 3), hint="Pass one axis-angle root rotation per sample.")
    check_tensor(
        body_pose, "body_pose", (None, skeleton.NUM_BODY_JOINTS, 3),
        hint="A flat (B, 69) pose can be reshaped with body_pose.view(-1, 23, 3).",
    )
    if global_orient.shape[0] != body_pose.shape[0]:
        from .errors import ShapeError

        raise ShapeError(
            f"global_orient and body_pose must have the same batch size; got {global_orient.shape[0]} and {body_pose.shape[0]}."
        )
    return axis_angle_to_matrix(torch.cat([global_orient[:, None], body_pose], 1))


def forward_kinematics(
    global_orient: torch.Tensor, body_pose: torch.Tensor, rest_joints: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL-24 FK from axis-angle: returns joints (B, 24, 3) in metres (pelvis at the origin) and global rotations."""
    rots = pose_to_rotations(global_orient, body_pose)
    if rest_joints is None:
        rest_joints = skeleton.rest_joints(rots.dtype, rots.device)
    return batch_rigid_transform(rots, rest_joints)


def bone_lengths(joints: torch.Tensor, parents: Sequence[int] = skeleton.PARENTS) -> torch.Tensor:
    """(..., J, 3) -> (..., J-1) length of the bone from each non-root joint to its parent."""
    idx = [i for i, p in enumerate(parents) if p >= 0]
    par = [parents[i] for i in idx]
    return (joints[..., idx, :] - joints[..., par, :]).norm(dim=-1)
