"""Retarget BVH motion onto posegen's SMPL-24 skeleton, preserving bone directions and each limb's twist.

How it works (all rotations in SMPL's world axes, y up, facing +z):

1. A reference pose of the BVH skeleton that matches SMPL's rest pose (T-pose) is built once per rig from the BVH
   offsets: in the BVH rest pose (every channel zero, every global rotation the identity) each BVH bone that carries
   an SMPL bone is swung, by the smallest rotation, onto the SMPL rest direction of that bone. Its twist is the rig's
   own, which is what keeps a knee bending about its hinge. Bones pointing the opposite way (rigs whose local y axis
   runs along every bone, so the legs point up at rest) first turn half a turn about the forward axis. A rig may
   add a roll about a limb's bones (``Rig.roll``: CMU's arms, whose rest axes hold the elbow hinge 30 degrees off).
2. Per frame, each SMPL joint's global rotation is the global rotation of the BVH joint that carries its bone,
   composed with the fixed alignment from (1): ``G_smpl = G_bvh * R_ref^T``. At the reference pose G_smpl = I.
3. The swing is refined so that the SMPL bone points exactly where the BVH bone points (from the BVH's own FK);
   the twist about the bone is kept. Joints with several children (pelvis, spine3) and leaves keep step (2).
4. Local rotations ``G_parent^T G_joint`` give global_orient and body_pose (axis-angle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import posegen_core as pg
from posegen_core import skeleton as sk

from .bvh_format import BVHSkeleton, forward_kinematics
from .bvh_rigs import Rig

_EPS_LENGTH = 1e-6


def swing_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (..., 3, 3) taking unit vectors ``a`` onto ``b`` (half a turn about a perpendicular axis
    when they are opposite)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    k = _skew(v)
    eye = np.broadcast_to(np.eye(3), k.shape)
    denom = np.where(c > -1 + 1e-9, 1.0 + c, 1.0)[..., None, None]
    r = eye + k + (k @ k) / denom
    opposite = c <= -1 + 1e-9
    if np.any(opposite):
        perp = np.cross(a[opposite], np.array([1.0, 0.0, 0.0]))
        weak = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[weak] = np.cross(a[opposite][weak], np.array([0.0, 1.0, 0.0]))
        r[opposite] = half_turn(perp)
    return r


def half_turn(axis: np.ndarray) -> np.ndarray:
    """Rotation by pi about ``axis`` (..., 3): 2 n n^T - I."""
    n = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    return 2.0 * n[..., :, None] * n[..., None, :] - np.eye(3)


def _skew(v: np.ndarray) -> np.ndarray:
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = np.zeros_like(x)
    return np.stack([o, -z, y, z, o, -x, -y, x, o], axis=-1).reshape(v.shape[:-1] + (3, 3))


@dataclass
class RetargetPlan:
    """Everything about one (BVH skeleton, rig) pair that does not depend on the frame."""

    rig: Rig
    skeleton: BVHSkeleton
    world: np.ndarray  # (3, 3) file axes -> SMPL axes
    mapped: dict[int, int]  # SMPL joint -> BVH joint (mapped joints only)
    carrier: dict[int, int]  # SMPL joint -> BVH joint whose global rotation drives it
    bone_child: dict[int, int]  # SMPL joint -> SMPL child whose direction is matched exactly (single-child joints)
    alignment: dict[int, np.ndarray]  # SMPL joint -> R_ref^T (3, 3)

    @property
    def bvh_joints(self) -> list[int]:
        return sorted(set(self.mapped.values()) | set(self.carrier.values()))


def plan_retarget(skeleton: BVHSkeleton, rig: Rig) -> RetargetPlan:
    """Compute the fixed rest-pose alignment between ``skeleton`` (described by ``rig``) and SMPL-24."""
    world = rig.world_to_smpl()
    rest = sk.rest_joints(torch.float64).numpy()
    mapped = {sk.JOINT_NAMES.index(s): skeleton.index(b) for s, b in rig.joints.items()}
    children = sk.children()
    carrier: dict[int, int] = {}
    bone_child: dict[int, int] = {}
    for j in range(sk.NUM_JOINTS):
        if j not in mapped:
            continue
        kids = [c for c in children[j] if c in mapped]
        carrier[j] = mapped[j]
        if len(children[j]) == 1 and kids and mapped[kids[0]] != mapped[j]:  # one BVH joint may play two
            c = kids[0]
            path = skeleton.ancestors(mapped[c])
            if mapped[j] not in path[1:]:
                raise pg.ConfigError(
                    f"rig '{rig.name}': BVH joint '{skeleton.names[mapped[c]]}' (SMPL {sk.JOINT_NAMES[c]}) is not "
                    f"below '{skeleton.names[mapped[j]]}' (SMPL {sk.JOINT_NAMES[j]}) in the BVH hierarchy; map "
                    "SMPL joints to BVH joints in the same parent/child order."
                )
            carrier[j] = int(skeleton.parents[mapped[c]])
            bone_child[j] = c

    # Reference pose: the BVH rest pose (every channel zero, so every global rotation is the identity), each carried
    # bone swung onto SMPL's rest direction of its bone. Joints without a bone inherit their parent's reference, so
    # that their local rotation is zero whenever the BVH's is.
    offsets = skeleton.offsets @ world.T
    zero_pos = np.zeros_like(offsets)
    for b in range(len(skeleton.names)):
        p = int(skeleton.parents[b])
        zero_pos[b] = offsets[b] + (zero_pos[p] if p >= 0 else 0.0)
    forward = np.array([0.0, 0.0, 1.0])
    reference: dict[int, np.ndarray] = {}
    roll: dict[int, float] = {}
    for j in range(sk.NUM_JOINTS):
        parent = sk.PARENTS[j]
        inherited = reference.get(parent, np.eye(3)) if parent >= 0 else np.eye(3)
        # A rig's roll (degrees about the bone) carries down its limb, so the limb turns as one piece.
        roll[j] = float(rig.roll.get(sk.JOINT_NAMES[j], roll.get(parent, 0.0) if parent > 0 else 0.0))
        c = bone_child.get(j)
        if c is None:
            reference[j] = inherited
            continue
        v = zero_pos[mapped[c]] - zero_pos[mapped[j]]
        if np.linalg.norm(v) < _EPS_LENGTH:
            bone_child.pop(j)  # a zero-length BVH bone has no direction to follow
            reference[j] = inherited
            continue
        target = rest[c] - rest[j]
        turn = np.eye(3)
        if float(v @ target) < -0.5 * np.linalg.norm(v) * np.linalg.norm(target):
            # Opposite directions (a rig whose rest bones all run along +y): half a turn about the forward axis
            # first, so that the tiny remaining swing, not numerical noise, decides the twist.
            axis = forward - (forward @ v) / (v @ v) * v
            if np.linalg.norm(axis) < 1e-6:
                axis = np.cross(v, [0.0, 1.0, 0.0])
            turn = half_turn(axis)
        reference[j] = swing_rotation(turn @ v, target) @ turn
        if roll[j]:
            axis = target / np.linalg.norm(target) * np.deg2rad(roll[j])
            reference[j] = pg.rotations.axis_angle_to_matrix(torch.from_numpy(axis)).numpy() @ reference[j]
    alignment = {j: reference[j].T for j in carrier}
    return RetargetPlan(rig, skeleton, world, mapped, carrier, bone_child, alignment)


@dataclass
class Retargeted:
    """A retargeted take: SMPL pose (float32 tensors) plus the BVH joint positions (metres, SMPL axes) it followed."""

    global_orient: torch.Tensor  # (F, 3)
    body_pose: torch.Tensor  # (F, 23, 3)
    bvh_joints: np.ndarray  # (F, 24, 3) positions of the mapped BVH joints (NaN where unmapped), root-relative


def retarget(plan: RetargetPlan, values: np.ndarray) -> Retargeted:
    """Retarget BVH channel values (F, C) to SMPL-24 axis-angle poses."""
    pos, rot = forward_kinematics(plan.skeleton, values, plan.bvh_joints)
    w = plan.world
    f = values.shape[0]
    root = pos[plan.mapped[0]]
    joints = np.full((f, sk.NUM_JOINTS, 3), np.nan)
    for j, b in plan.mapped.items():
        joints[:, j] = (pos[b] - root) @ w.T * plan.rig.scale
    rest = sk.rest_joints(torch.float64).numpy()
    glob = np.broadcast_to(np.eye(3), (f, sk.NUM_JOINTS, 3, 3)).copy()
    for j in range(sk.NUM_JOINTS):
        if j not in plan.carrier:
            glob[:, j] = glob[:, sk.PARENTS[j]] if sk.PARENTS[j] >= 0 else np.eye(3)
            continue
        g = w @ rot[plan.carrier[j]] @ w.T @ plan.alignment[j]
        c = plan.bone_child.get(j)
        if c is not None:
            target = joints[:, c] - joints[:, j]
            ok = np.linalg.norm(target, axis=-1) > _EPS_LENGTH
            current = g @ (rest[c] - rest[j])
            fix = swing_rotation(current[ok], target[ok])
            g[ok] = fix @ g[ok]
        glob[:, j] = g
    parents = [p for p in sk.PARENTS[1:]]
    local = np.einsum("fjki,fjkl->fjil", glob[:, parents], glob[:, 1:])
    rots = torch.from_numpy(np.concatenate([glob[:, :1], local], axis=1)).float()  # float32: 3x faster, ample
    aa = pg.rotations.matrix_to_axis_angle(rots)
    return Retargeted(aa[:, 0].contiguous(), aa[:, 1:].contiguous(), joints)
