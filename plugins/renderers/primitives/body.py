"""The body as 3D ellipsoids attached to the posed SMPL-24 skeleton.

Three kinds of primitive, all ellipsoids ``{x : (x - c)^T Sigma^-1 (x - c) <= 1}``:

- round bones: between two joints, a long axis along the bone and a circular cross-section (limbs, neck);
- flat bones: between two joints with an elliptical cross-section whose width follows one axis of a joint's
  rotation (torso, hands, feet), so the body's left-right and front-back are told apart;
- blobs: at a joint, offset and shaped in that joint's rotated frame (pelvis, head, hair, eyes, nose, ears, joints).

Sizes are in metres for the rest skeleton and scale with the posed skeleton's bone lengths (so a taller skeleton
gets a bigger body) and with the subject's thickness (radii only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import posegen_core as pg

from .subjects import COLOUR_SLOTS

L_ = {"collar": 13, "shoulder": 16, "elbow": 18, "wrist": 20, "hand": 22, "hip": 1, "knee": 4, "ankle": 7, "foot": 10}
R_ = {"collar": 14, "shoulder": 17, "elbow": 19, "wrist": 21, "hand": 23, "hip": 2, "knee": 5, "ankle": 8, "foot": 11}

# (name, parent joint, child joint, radius, extra half-length, shift along the bone, colour slot)
ROUND_BONES: list[tuple[str, int, int, float, float, float, str]] = [("neck", 12, 15, 0.05, 0.0, 0.0, "skin")]
# (name, a, b, frame joint, frame axis, width radius, depth radius, extra half-length, shift, slot)
FLAT_BONES: list[tuple[str, int, int, int, int, float, float, float, float, str]] = [
    ("abdomen", 0, 6, 3, 0, 0.14, 0.105, 0.07, 0.0, "torso"),
    ("chest", 6, 12, 9, 0, 0.17, 0.115, 0.05, -0.01, "torso"),
]
# (name, joint, offset xyz in the joint frame, radii xyz in the joint frame, slot)
BLOBS: list[tuple[str, int, tuple[float, float, float], tuple[float, float, float], str]] = [
    ("pelvis", 0, (0.0, -0.035, -0.01), (0.16, 0.11, 0.11), "torso"),
    ("head", 15, (0.0, 0.075, 0.01), (0.08, 0.105, 0.095), "skin"),
    ("hair", 15, (0.0, 0.095, -0.02), (0.083, 0.095, 0.085), "hair"),
    ("left_eye", 15, (0.032, 0.085, 0.092), (0.014, 0.014, 0.014), "eyes"),
    ("right_eye", 15, (-0.032, 0.085, 0.092), (0.014, 0.014, 0.014), "eyes"),
    ("nose", 15, (0.0, 0.06, 0.1), (0.016, 0.02, 0.018), "skin"),
    ("left_ear", 15, (0.08, 0.07, 0.0), (0.016, 0.028, 0.02), "skin"),
    ("right_ear", 15, (-0.08, 0.07, 0.0), (0.016, 0.028, 0.02), "skin"),
]

for side, j, sign in (("left", L_, 1.0), ("right", R_, -1.0)):
    arm, leg, foot = f"{side}_arm", f"{side}_leg", f"{side}_foot"
    ROUND_BONES += [
        (f"{side}_collar", j["collar"], j["shoulder"], 0.06, 0.0, 0.0, "torso"),
        (f"{side}_upper_arm", j["shoulder"], j["elbow"], 0.05, 0.01, 0.0, arm),
        (f"{side}_forearm", j["elbow"], j["wrist"], 0.04, 0.0, 0.0, arm),
        (f"{side}_thigh", j["hip"], j["knee"], 0.08, 0.0, 0.0, leg),
        (f"{side}_shin", j["knee"], j["ankle"], 0.055, 0.0, 0.0, leg),
    ]
    FLAT_BONES += [
        (f"{side}_hand", j["wrist"], j["hand"], j["wrist"], 2, 0.045, 0.022, 0.05, 0.035, "skin"),
        (f"{side}_foot", j["ankle"], j["foot"], j["ankle"], 0, 0.045, 0.035, 0.05, 0.025, foot),
    ]
    BLOBS += [
        (f"{side}_shoulder", j["shoulder"], (0.0, 0.0, 0.0), (0.058,) * 3, arm),
        (f"{side}_elbow", j["elbow"], (0.0, 0.0, 0.0), (0.043,) * 3, arm),
        (f"{side}_wrist", j["wrist"], (0.0, 0.0, 0.0), (0.032,) * 3, arm),
        (f"{side}_hip", j["hip"], (0.0, 0.0, -0.01), (0.085,) * 3, leg),
        (f"{side}_knee", j["knee"], (0.0, 0.0, 0.0), (0.058,) * 3, leg),
        (f"{side}_ankle", j["ankle"], (0.0, 0.0, 0.0), (0.042,) * 3, leg),
    ]

PRIMITIVE_NAMES: tuple[str, ...] = tuple(p[0] for p in ROUND_BONES) + tuple(p[0] for p in FLAT_BONES) + tuple(
    p[0] for p in BLOBS
)
NUM_PRIMITIVES = len(PRIMITIVE_NAMES)
PRIMITIVE_SLOTS = torch.tensor(
    [COLOUR_SLOTS.index(p[-1]) for p in ROUND_BONES + FLAT_BONES + BLOBS], dtype=torch.long  # type: ignore[operator]
)


@dataclass
class Ellipsoids:
    """(B, K, 3) centres, (B, K, 3, 3) covariances Sigma and their inverses, in the camera frame (metres)."""

    centres: torch.Tensor
    cov: torch.Tensor
    cov_inv: torch.Tensor


def _rest_lengths() -> torch.Tensor:
    return pg.kinematics.bone_lengths(pg.skeleton.rest_joints(torch.float64)).sum()


_REST_TOTAL = float(_rest_lengths())


def body_scale(joints: torch.Tensor) -> torch.Tensor:
    """(B,) total bone length over the rest skeleton's: sizes every primitive from the bone lengths."""
    return pg.kinematics.bone_lengths(joints).sum(-1) / _REST_TOTAL


def _outer(v: torch.Tensor) -> torch.Tensor:
    return v[..., :, None] * v[..., None, :]


def _bone_axes(joints: torch.Tensor, a: list[int], b: list[int], extend: torch.Tensor, shift: torch.Tensor,
               scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit direction, half-length and centre of bones a -> b (lengths include ``extend``, centre the ``shift``)."""
    v = joints[:, b] - joints[:, a]
    length = v.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    d = v / length
    half = length[..., 0] / 2 + extend * scale[:, None]
    centre = (joints[:, a] + joints[:, b]) / 2 + d * (shift * scale[:, None])[..., None]
    return d, half, centre


def build_ellipsoids(joints: torch.Tensor, rotations: torch.Tensor, thickness: torch.Tensor) -> Ellipsoids:
    """Place every primitive on the skeleton: joints (B, 24, 3), global rotations (B, 24, 3, 3), thickness (B,)."""
    dt, dev = joints.dtype, joints.device
    scale = body_scale(joints)  # (B,)
    rad = (scale * thickness.to(dt))[:, None]  # radius factor (B, 1)
    eye = torch.eye(3, dtype=dt, device=dev)

    def t(x) -> torch.Tensor:
        return torch.tensor(x, dtype=dt, device=dev)

    centres, covs, invs = [], [], []
    # Round bones: Sigma = r^2 I + (a^2 - r^2) d d^T.
    rb = ROUND_BONES
    d, half, c = _bone_axes(joints, [p[1] for p in rb], [p[2] for p in rb], t([p[4] for p in rb]),
                            t([p[5] for p in rb]), scale)
    r = t([p[3] for p in rb]) * rad
    dd = _outer(d)
    r2, a2 = (r * r)[..., None, None], (half * half)[..., None, None]
    centres.append(c)
    covs.append(r2 * eye + (a2 - r2) * dd)
    invs.append(eye / r2 + (1 / a2 - 1 / r2) * dd)
    # Flat bones: Sigma = rz^2 I + (a^2 - rz^2) d d^T + (rx^2 - rz^2) s s^T, s the frame axis made normal to d.
    fb = FLAT_BONES
    d, half, c = _bone_axes(joints, [p[1] for p in fb], [p[2] for p in fb], t([p[7] for p in fb]),
                            t([p[8] for p in fb]), scale)
    ref = torch.stack([rotations[:, p[3], :, p[4]] for p in fb], 1)  # a column of the frame joint's rotation
    side = ref - (ref * d).sum(-1, keepdim=True) * d
    side = side / side.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    rx, rz = t([p[5] for p in fb]) * rad, t([p[6] for p in fb]) * rad
    dd, ss = _outer(d), _outer(side)
    rx2, rz2, a2 = (rx * rx)[..., None, None], (rz * rz)[..., None, None], (half * half)[..., None, None]
    centres.append(c)
    covs.append(rz2 * eye + (a2 - rz2) * dd + (rx2 - rz2) * ss)
    invs.append(eye / rz2 + (1 / a2 - 1 / rz2) * dd + (1 / rx2 - 1 / rz2) * ss)
    # Blobs: Sigma = R diag(radii^2) R^T, centre = joint + R offset.
    bl = BLOBS
    rot = rotations[:, [p[1] for p in bl]]  # (B, Kb, 3, 3)
    off = t([p[2] for p in bl]) * scale[:, None, None]
    radii = t([p[3] for p in bl]) * rad[..., None]
    centres.append(joints[:, [p[1] for p in bl]] + (rot @ off[..., None])[..., 0])
    covs.append((rot * (radii * radii)[:, :, None, :]) @ rot.transpose(-1, -2))
    invs.append((rot / (radii * radii)[:, :, None, :]) @ rot.transpose(-1, -2))
    return Ellipsoids(torch.cat(centres, 1), torch.cat(covs, 1), torch.cat(invs, 1))
