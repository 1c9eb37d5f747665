"""How the SMPL-24 skeleton drives the anny body (see docs/ANNY.md for the measured fit).

Correspondence. Each SMPL joint is an anny bone head (or the mean of a few, ``SMPL_JOINT_FROM_ANNY_BONES``), and
each anny bone belongs to the SMPL segment that contains it (``ANNY_BONE_TO_SMPL``): SMPL joint j's segment runs
from j to its children, so anny's bones between two mapped joints move with the upper one. Summing anny's own
skinning weights over those groups gives every surface point SMPL-24 skinning weights.

Rest-pose alignment. anny rests in an A pose (arms about 45 degrees down), SMPL in a T pose, and both have their own
bone lengths. Each SMPL segment with one child gets the smallest rotation ``A_j`` that turns anny's rest bone
(j -> child) onto SMPL's rest bone direction; segments with several children (pelvis, spine, neck) and the ends
(hands, feet, head) take their own or their parent's alignment. Being the smallest rotation, ``A_j`` adds no twist:
the twist about the bone is the one in the SMPL rotation.

Bone lengths. The subject is scaled by ``s`` so that its bone lengths sum to the skeleton's (the overall size follows
the skeleton), then each limb segment is stretched along its bone by ``S_j = I + (f_j - 1) u_j u_j^T`` (``u_j`` the
SMPL rest bone direction, ``f_j`` the label bone length over the scaled anny bone length), so the segment ends on the
label's child joint. Segments with several children or none are not stretched.

Posing. A point x of a subject's rest body goes to ``sum_j w_j (R_j S_j A_j s (x - a_j) + p_j)``: linear blend
skinning anchored at the label joints ``p_j`` with the contract's global rotations ``R_j``. Each segment is placed
exactly on its label joint.
"""

from __future__ import annotations

import torch

import posegen_core as pg


def ANNY_BONE_TO_SMPL(name: str) -> int:  # noqa: N802 (a table written as a function)
    """The SMPL-24 joint whose segment holds the anny bone ``name`` (anny's default 'anny' rig)."""
    side = name[-1] if name[-2:] in (".L", ".R") else ""
    left = side == "L"
    base = name[:-2] if side else name
    if base in ("root", "pelvis", "spine05", "spine04"):
        return 0
    if base == "spine03":
        return 3
    if base == "spine02":
        return 6
    if base == "spine01":
        return 9
    if base.startswith("neck"):
        return 12
    if base in ("head", "eye"):
        return 15
    if base.startswith("upperleg"):
        return 1 if left else 2
    if base.startswith("lowerleg"):
        return 4 if left else 5
    if base == "foot":
        return 7 if left else 8
    if base.startswith("toe"):
        return 10 if left else 11
    if base in ("clavicle", "shoulder01"):
        return 13 if left else 14
    if base.startswith("upperarm"):
        return 16 if left else 17
    if base.startswith("lowerarm"):
        return 18 if left else 19
    if base in ("wrist",) or base.startswith("metacarpal"):
        return 20 if left else 21
    if base.startswith("finger"):
        return 22 if left else 23
    raise pg.PluginError(f"anny bone '{name}' has no SMPL-24 counterpart; is this anny's default 'anny' rig?")


def _both(names: tuple[str, ...], side: str) -> tuple[str, ...]:
    return tuple(f"{n}.{side}" for n in names)


#: Anny bone heads averaged into each SMPL-24 joint, in SMPL order.
SMPL_JOINT_FROM_ANNY_BONES: tuple[tuple[str, ...], ...] = (
    ("root",),  # pelvis
    ("upperleg01.L", "upperleg02.L"), ("upperleg01.R", "upperleg02.R"),  # hips: the ball of the joint lies between
    ("spine03",),  # spine1
    ("lowerleg01.L",), ("lowerleg01.R",),  # knees
    ("spine02",),  # spine2
    ("foot.L",), ("foot.R",),  # ankles
    ("spine01",),  # spine3
    _both(("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1"), "L"),  # feet: the base of the toes
    _both(("toe1-1", "toe2-1", "toe3-1", "toe4-1", "toe5-1"), "R"),
    ("neck01",),  # neck
    ("clavicle.L", "shoulder01.L"), ("clavicle.R", "shoulder01.R"),  # collars: between sternum and shoulder blade
    ("head",),  # head
    ("upperarm01.L",), ("upperarm01.R",),  # shoulders
    ("lowerarm01.L",), ("lowerarm01.R",),  # elbows
    ("wrist.L",), ("wrist.R",),  # wrists
    _both(("finger2-1", "finger3-1", "finger4-1", "finger5-1"), "L"),  # hands: the knuckles
    _both(("finger2-1", "finger3-1", "finger4-1", "finger5-1"), "R"),
)

#: The child that sets each segment's rest alignment (-1: identity; -2: the parent's alignment).
ALIGN_CHILD: tuple[int, ...] = (
    -1, 4, 5, -1, 7, 8, -1, 10, 11, -1, -2, -2, -1, 16, 17, -1, 18, 19, 20, 21, 22, 23, -2, -2,
)


def smallest_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation of least angle turning direction ``a`` onto ``b`` (neither needs unit length)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    zero = torch.zeros_like(c)
    k = torch.stack([torch.stack([zero, -v[..., 2], v[..., 1]], -1),
                     torch.stack([v[..., 2], zero, -v[..., 0]], -1),
                     torch.stack([-v[..., 1], v[..., 0], zero], -1)], -2)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand(k.shape)
    return eye + k + k @ k / (1.0 + c)[..., None, None].clamp_min(1e-6)


def rest_alignment(anny_joints: torch.Tensor, smpl_rest: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) alignments A_j of a subject's rest joints (B, 24, 3) to the SMPL rest joints (24, 3)."""
    b = anny_joints.shape[0]
    eye = torch.eye(3, dtype=anny_joints.dtype, device=anny_joints.device)
    out: list[torch.Tensor] = []
    for j, c in enumerate(ALIGN_CHILD):
        if c == -1:
            out.append(eye.expand(b, 3, 3))
        elif c == -2:
            out.append(out[pg.skeleton.PARENTS[j]])
        else:
            out.append(smallest_rotation(anny_joints[:, c] - anny_joints[:, j],
                                         (smpl_rest[c] - smpl_rest[j]).expand(b, 3)))
    return torch.stack(out, 1)


def bone_length_scale(joints: torch.Tensor, anny_joints: torch.Tensor) -> torch.Tensor:
    """(B,) isotropic scale that makes the anny subject's bone lengths sum to the skeleton's."""
    return pg.kinematics.bone_lengths(joints).sum(-1) / pg.kinematics.bone_lengths(anny_joints).sum(-1)


def stretch(joints: torch.Tensor, anny_joints: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) stretches S_j of the limb segments along their SMPL rest bone (identity elsewhere)."""
    rest = pg.skeleton.rest_joints(joints.dtype, joints.device)
    eye = torch.eye(3, dtype=joints.dtype, device=joints.device)
    out = []
    for j, c in enumerate(ALIGN_CHILD):
        if c < 0:
            out.append(eye.expand(joints.shape[0], 3, 3))
            continue
        u = rest[c] - rest[j]
        u = u / u.norm()
        f = (joints[:, c] - joints[:, j]).norm(dim=-1) / ((anny_joints[:, c] - anny_joints[:, j]).norm(dim=-1) * scale)
        out.append(eye + (f - 1.0)[:, None, None] * (u[:, None] * u[None, :]))
    return torch.stack(out, 1)


def skin(points: torch.Tensor, weights: torch.Tensor, anny_joints: torch.Tensor, align: torch.Tensor,
         scale: torch.Tensor, joints: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Pose rest points (B, N, 3) with SMPL-24 weights (N, 24) or (B, N, 24): see the module doc. Returns (B, N, 3)."""
    m = rotations @ stretch(joints, anny_joints, scale) @ align  # (B, 24, 3, 3)
    local = (points[:, None] - anny_joints[:, :, None]) * scale[:, None, None, None]  # (B, 24, N, 3)
    per_joint = local @ m.transpose(-1, -2) + joints[:, :, None]  # (B, 24, N, 3)
    w = weights if weights.dim() == 3 else weights[None].expand(points.shape[0], -1, -1)
    return torch.einsum("bnj,bjnc->bnc", w, per_joint)


def skin_directions(directions: torch.Tensor, weights: torch.Tensor, align: torch.Tensor,
                    rotations: torch.Tensor) -> torch.Tensor:
    """Rotate rest directions (N, 3) by the blended segment rotations; returns unit vectors (B, N, 3)."""
    m = rotations @ align  # (B, 24, 3, 3)
    blended = torch.einsum("nj,bjcd->bncd", weights, m)  # (B, N, 3, 3)
    d = (blended @ directions[None, :, :, None])[..., 0]
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)
