"""The SMPL 24-joint skeleton: names, parents, rest joints and the part lists of the paper's discriminator.

Rest joints are the SMPL neutral rest joints as A-NeRF stores them (y up, subject's left at +x, facing +z, pelvis at
the origin), scaled to metres by ``ANERF_UNITS_TO_METRES``. The real SMPL model gives exact shape-dependent joints
instead (see ``body_models.SMPLBody``).
"""

from __future__ import annotations

import torch

NUM_JOINTS = 24
NUM_BODY_JOINTS = 23  # body_pose excludes the root

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

#: Conversion used for the A-NeRF rest pose (thigh 0.8744 units -> about 0.38 m).
ANERF_UNITS_TO_METRES = 0.43

#: SMPL neutral rest joints in A-NeRF units (reference/smpl24_skeleton.md).
REST_JOINTS_ANERF: tuple[tuple[float, float, float], ...] = (
    (0.000000, 0.000000, -0.000000), (0.163833, -0.217391, -0.028918), (-0.157855, -0.214762, -0.020964),
    (-0.007045, 0.250451, -0.041184), (0.242021, -1.088301, -0.031496), (-0.247207, -1.107155, -0.030697),
    (0.003951, 0.594849, -0.040375), (0.212681, -1.993824, -0.129328), (-0.210858, -2.012188, -0.123003),
    (0.009395, 0.719204, 0.020693), (0.263385, -2.122225, 0.146776), (-0.251971, -2.121531, 0.160450),
    (0.003838, 1.225924, -0.097884), (0.191202, 1.003860, -0.062196), (-0.177146, 0.996229, -0.075554),
    (0.016848, 1.386983, 0.024405), (0.401985, 1.079284, -0.074766), (-0.398825, 1.075239, -0.099633),
    (1.002370, 1.052172, -0.135130), (-0.986729, 1.045151, -0.140235), (1.566462, 1.069619, -0.137339),
    (-1.569465, 1.059359, -0.153906), (1.752821, 1.046830, -0.168231), (-1.757582, 1.042551, -0.177774),
)

#: Body parts of the paper's part discriminator (official code; SMPL joint indices, root included).
BODY_PARTS: dict[str, tuple[int, ...]] = {
    "left_leg": (4, 7, 10),
    "right_leg": (5, 8, 11),
    "left_arm": (9, 13, 16, 18, 20, 22),
    "right_arm": (9, 14, 17, 19, 21, 23),
    "torso": (0, 1, 2, 3, 6, 9, 13, 14, 16, 17),
    "head": (9, 12, 15),
}

#: Left/right mirror permutation of the 24 joints.
FLIP_PERMUTATION: tuple[int, ...] = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)

#: 14 joints taken straight from SMPL-24 in the LSP-14 order (an approximation of the H36M-regressed set).
SMPL24_TO_LSP14: tuple[int, ...] = (8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12, 15)


def rest_joints(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Rest joints (24, 3) in metres, pelvis at the origin."""
    return torch.tensor(REST_JOINTS_ANERF, dtype=dtype, device=device) * ANERF_UNITS_TO_METRES


def children() -> list[list[int]]:
    """Children of every joint, in index order."""
    out: list[list[int]] = [[] for _ in range(NUM_JOINTS)]
    for j, p in enumerate(PARENTS):
        if p >= 0:
            out[p].append(j)
    return out


def is_left(j: int) -> bool:
    return JOINT_NAMES[j].startswith("left_")


def is_right(j: int) -> bool:
    return JOINT_NAMES[j].startswith("right_")
