"""HybrIK's twist-and-swing inverse kinematics: SMPL local rotations from 29 joint positions and 23 twist angles.

Why analytical IK: HybrIK predicts joints (3D heatmaps) and, per bone, the twist angle phi about the bone; the
rotation of each joint is then the *swing* that points its rest bone at the predicted bone, times the *twist* about
the rest bone. With the true joints and twists the original rotations come back exactly.

The 29 joints are the 24 SMPL joints plus 5 leaves (head top, middle fingertips, big toes: SMPL vertices
``LEAF_VERTICES``), so that the head, hands and feet have a bone to swing. Joint ``i`` swings towards its chosen
child ``SWING_CHILD[i]`` (its first child, except pelvis -> spine1 and spine3 -> neck, as HybrIK); the pelvis uses a
Kabsch fit over its three children (evaluation) or HybrIK's analytic ``batch_get_pelvis_orient`` (training, "naive":
swing the spine onto the predicted spine, then turn about it to match the hips' mean). Positions are root-relative metres in any right-handed frame (the rest skeleton
is SMPL's body frame; the recovered root rotation maps it into the frame of the targets, e.g. the camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import posegen_core as pg
from posegen_core import skeleton, validation

NUM_JOINTS_29 = 29

#: SMPL parents plus the leaves: 24 head top <- 15 head, 25/26 middle fingertips <- 22/23 hands, 27/28 big toes <- 10/11 feet.
PARENTS_29: tuple[int, ...] = skeleton.PARENTS + (15, 22, 23, 10, 11)

#: SMPL mesh vertices that define the leaves (HybrIK: head top, left/right middle fingertip, left/right big toe).
LEAF_VERTICES: tuple[int, ...] = (411, 2445, 5905, 3216, 6617)

#: Leaf offsets from their parents in metres (body frame) for the skeleton-only path, where no mesh is available.
#: Approximate human proportions: the head top 0.2 m above the head joint, fingertips 0.09 m out from the hand joints,
#: big toes 0.07 m forward and 0.04 m down from the foot joints. They only fix the rotations of joints 10, 11, 15,
#: 22 and 23 (whose rotations move no other SMPL-24 joint).
SKELETON_LEAF_OFFSETS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.20, 0.0), (0.09, -0.01, 0.0), (-0.09, -0.01, 0.0), (0.01, -0.04, 0.07), (-0.01, -0.04, 0.07),
)


def _swing_children() -> tuple[int, ...]:
    child = [-1] * NUM_JOINTS_29
    for j in range(1, NUM_JOINTS_29):
        p = PARENTS_29[j]
        if child[p] < 0:
            child[p] = j
    child[0], child[9] = 3, 12  # HybrIK: pelvis swings to spine1, spine3 to the neck
    return tuple(child)


#: The child each SMPL joint's swing points at (-1 for the leaves).
SWING_CHILD: tuple[int, ...] = _swing_children()


# --------------------------------------------------------------------------------------------------- rest skeletons
def skeleton_rest_joints29(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The default SMPL-24 rest skeleton (posegen_core.skeleton) plus approximate leaves: (29, 3) metres."""
    rest = skeleton.rest_joints(dtype, device)
    offsets = torch.tensor(SKELETON_LEAF_OFFSETS, dtype=dtype, device=device)
    leaves = rest[list(PARENTS_29[24:])] + offsets
    return torch.cat([rest, leaves], 0)


def smpl_rest_joints29(
    v_template: torch.Tensor, shapedirs: torch.Tensor, j_regressor: torch.Tensor, betas: torch.Tensor
) -> torch.Tensor:
    """HybrIK's shaped rest skeleton (B, 29, 3): J_regressor on the shaped mesh, leaves picked from its vertices,
    pelvis at the origin. ``shapedirs`` is (V, 3, K); ``betas`` (B, <=K)."""
    k = betas.shape[-1]
    v_shaped = v_template + torch.einsum("bk,vck->bvc", betas, shapedirs[..., :k])
    joints = torch.einsum("jv,bvc->bjc", j_regressor, v_shaped)
    rest = torch.cat([joints, v_shaped[:, list(LEAF_VERTICES)]], 1)
    return rest - rest[:, :1]


# --------------------------------------------------------------------------------------------------- small geometry
def swing_rotation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The smallest rotation (B, 3, 3) that turns direction ``a`` (B, 3) onto direction ``b`` (B, 3) (Rodrigues)."""
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    cross = torch.cross(an, bn, dim=-1)
    sin = cross.norm(dim=-1, keepdim=True)
    cos = (an * bn).sum(-1, keepdim=True)
    # Opposite directions: any axis perpendicular to a works; build one from the least-aligned basis vector.
    basis = torch.eye(3, dtype=a.dtype, device=a.device)[an.abs().argmin(-1)]
    perp = torch.cross(an, basis, dim=-1)
    perp = perp / perp.norm(dim=-1, keepdim=True).clamp_min(eps)
    degenerate = sin < 1e-7
    axis = torch.where(degenerate, perp, cross / sin.clamp_min(1e-7))
    sin = torch.where(degenerate, torch.zeros_like(sin), sin)
    cos = torch.where(degenerate, torch.sign(cos) + (cos == 0).to(cos.dtype), cos)
    k = pg.rotations.skew(axis)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(k)
    return eye + sin[..., None] * k + (1.0 - cos)[..., None] * (k @ k)


def twist_rotation(axis: torch.Tensor, phi: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rotation (B, 3, 3) about unit ``axis`` (B, 3) by the angle whose (cos, sin) is ``phi`` (B, 2) (normalised here)."""
    phi = phi / phi.norm(dim=-1, keepdim=True).clamp_min(eps)
    cos, sin = phi[..., :1, None], phi[..., 1:, None]
    k = pg.rotations.skew(axis / axis.norm(dim=-1, keepdim=True).clamp_min(eps))
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(k)
    return eye + sin * k + (1.0 - cos) * (k @ k)


def kabsch_rotation(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The rotation R (B, 3, 3) minimising sum_k |R source_k - target_k|^2 for vectors (B, K, 3) (det fixed to +1)."""
    h = source.transpose(1, 2) @ target  # sum_k s_k t_k^T
    u, _, vh = torch.linalg.svd(h)
    v = vh.transpose(1, 2)
    d = torch.linalg.det(v @ u.transpose(1, 2))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), torch.sign(d) + (d == 0).to(d.dtype)], -1))
    return v @ fix @ u.transpose(1, 2)


def pelvis_orientation_naive(rest_rel: torch.Tensor, target_rel: torch.Tensor) -> torch.Tensor:
    """HybrIK's training-path root (official ``batch_get_pelvis_orient``): swing the rest spine1 vector onto the
    predicted one, then rotate about the predicted spine so that the mean of the two hip vectors, projected
    perpendicular to the spine, matches. ``rest_rel``/``target_rel`` (B, 3, 3): the vectors pelvis -> (spine1,
    left hip, right hip)."""
    spine_rest, spine_final = rest_rel[:, 0], target_rel[:, 0]
    spine_dir = spine_final / (spine_final.norm(dim=-1, keepdim=True) + 1e-8)
    rot_spine = swing_rotation(spine_rest, spine_final)
    centre_rest = (rot_spine @ rest_rel[:, 1:].mean(1)[..., None])[..., 0]
    centre_final = target_rel[:, 1:].mean(1)
    centre_rest = centre_rest - (centre_rest * spine_dir).sum(-1, keepdim=True) * spine_dir
    centre_final = centre_final - (centre_final * spine_dir).sum(-1, keepdim=True) * spine_dir
    return swing_rotation(centre_rest, centre_final) @ rot_spine


# --------------------------------------------------------------------------------------------------- FK and IK
def forward_kinematics29(rotations: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose the 29-joint skeleton: local rotations (B, 24, 3, 3), rest (29, 3) or (B, 29, 3) -> joints (B, 29, 3)
    (the root stays at its rest position) and global rotations (B, 24, 3, 3). Leaves carry no rotation."""
    b = rotations.shape[0]
    if rest.dim() == 2:
        rest = rest.expand(b, -1, -1)
    glob: list[torch.Tensor] = [rotations[:, 0]]
    pos: list[torch.Tensor] = [rest[:, 0]]
    for i in range(1, NUM_JOINTS_29):
        p = PARENTS_29[i]
        pos.append(pos[p] + (glob[p] @ (rest[:, i] - rest[:, p])[..., None])[..., 0])
        if i < skeleton.NUM_JOINTS:
            glob.append(glob[p] @ rotations[:, i])
    return torch.stack(pos, 1), torch.stack(glob, 1)


@dataclass
class IKResult:
    rotations: torch.Tensor  # (B, 24, 3, 3) local rotations, joint 0 = global orientation
    global_rotations: torch.Tensor  # (B, 24, 3, 3)


def inverse_kinematics(
    joints: torch.Tensor,
    phis: torch.Tensor,
    rest: torch.Tensor,
    naive: bool = False,
    fallback_distance: float = 0.015,
) -> IKResult:
    """HybrIK's twist-and-swing IK.

    Args:
        joints: (B, 29, 3) target joint positions (root-relative metres).
        phis: (B, 23, 2) (cos, sin) of the twist of joints 1..23 about their rest bone (any norm; normalised here).
        rest: (29, 3) or (B, 29, 3) rest skeleton in the body frame.
        naive: HybrIK's training variant: each bone is swung onto the *predicted* bone vector (no accumulation of
            the already-posed chain, no fallback). The default is the evaluation variant: the bone target starts at
            the joint as posed by the rotations solved so far, and falls back to the predicted bone direction at rest
            length when those disagree by more than ``fallback_distance`` metres (bad predictions).

    Returns:
        local and global rotations (B, 24, 3, 3).
    """
    validation.check_tensor(joints, "joints", (None, NUM_JOINTS_29, 3), hint="HybrIK IK needs the 29-joint set.")
    validation.check_tensor(phis, "phis", (joints.shape[0], skeleton.NUM_BODY_JOINTS, 2))
    b = joints.shape[0]
    if rest.dim() == 2:
        rest = rest.expand(b, -1, -1)
    rest = rest.to(joints.dtype)
    if naive:
        root = pelvis_orientation_naive(rest[:, [3, 1, 2]] - rest[:, :1], joints[:, [3, 1, 2]] - joints[:, :1])
    else:
        root = kabsch_rotation(rest[:, [1, 2, 3]] - rest[:, :1], joints[:, [1, 2, 3]] - joints[:, :1])
    local: list[torch.Tensor] = [root]
    glob: list[torch.Tensor] = [root]
    pos: list[torch.Tensor] = [joints[:, 0]]
    for i in range(1, skeleton.NUM_JOINTS):
        p, c = PARENTS_29[i], SWING_CHILD[i]
        pos.append(pos[p] + (glob[p] @ (rest[:, i] - rest[:, p])[..., None])[..., 0])
        rest_bone = rest[:, c] - rest[:, i]
        predicted = joints[:, c] - joints[:, i]
        if naive:
            target = predicted
        else:
            target = joints[:, c] - pos[i]
            at_rest_length = predicted / predicted.norm(dim=-1, keepdim=True).clamp_min(1e-8) * rest_bone.norm(
                dim=-1, keepdim=True
            )
            far = (target - at_rest_length).norm(dim=-1, keepdim=True) > fallback_distance
            target = torch.where(far, at_rest_length, target)
        target_local = (glob[p].transpose(1, 2) @ target[..., None])[..., 0]
        rot = swing_rotation(rest_bone, target_local) @ twist_rotation(rest_bone, phis[:, i - 1])
        local.append(rot)
        glob.append(glob[p] @ rot)
    return IKResult(torch.stack(local, 1), torch.stack(glob, 1))
