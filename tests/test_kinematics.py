"""Forward kinematics of the SMPL-24 skeleton, against scipy's Rotation composed joint by joint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import kinematics, skeleton
from posegen_core.rotations import axis_angle_to_matrix


def random_pose(b: int, seed: int, scale: float = 0.8, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 3, generator=g, dtype=dtype) * scale,
        torch.randn(b, 23, 3, generator=g, dtype=dtype) * scale,
    )


def scipy_fk(global_orient: np.ndarray, body_pose: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An independent FK: scipy rotations composed along the kinematic tree, one joint at a time."""
    b = global_orient.shape[0]
    joints = np.zeros((b, 24, 3))
    rots = np.zeros((b, 24, 3, 3))
    for s in range(b):
        local = [Rotation.from_rotvec(global_orient[s])] + [Rotation.from_rotvec(v) for v in body_pose[s]]
        glob: list[Rotation] = []
        for j, p in enumerate(skeleton.PARENTS):
            if p < 0:
                glob.append(local[j])
                joints[s, j] = rest[j]
            else:
                glob.append(glob[p] * local[j])
                joints[s, j] = joints[s, p] + glob[p].apply(rest[j] - rest[p])
            rots[s, j] = glob[j].as_matrix()
    return joints, rots


def test_skeleton_tables_are_consistent():
    assert len(skeleton.JOINT_NAMES) == len(skeleton.PARENTS) == len(skeleton.REST_JOINTS_ANERF) == 24
    assert all(p < j for j, p in enumerate(skeleton.PARENTS)), "parents come before children"
    flip = skeleton.FLIP_PERMUTATION
    assert sorted(flip) == list(range(24)) and all(flip[flip[j]] == j for j in range(24))
    for j in range(24):
        name = skeleton.JOINT_NAMES[j]
        mirrored = skeleton.JOINT_NAMES[flip[j]]
        assert mirrored == name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")


def test_rest_skeleton_is_in_metres_and_upright():
    rest = skeleton.rest_joints(torch.float64)
    assert torch.equal(rest[0], torch.zeros(3, dtype=torch.float64))
    thigh = (rest[4] - rest[1]).norm().item()
    assert 0.33 < thigh < 0.43, "thigh about 0.38 m"
    head_to_ankle = (rest[15, 1] - rest[7, 1]).item()
    assert 1.3 < head_to_ankle < 1.6
    assert rest[16, 0] > 0 > rest[17, 0], "subject's left at +x"
    assert rest[15, 1] > 0 > rest[7, 1], "y up"
    assert rest[10, 2] > rest[7, 2], "toes point forward (+z)"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_kinematics_matches_scipy(dtype):
    go, bp = random_pose(8, 0, dtype=dtype)
    joints, glob = pg.forward_kinematics(go, bp)
    rest = skeleton.rest_joints(torch.float64).numpy()
    exp_joints, exp_rots = scipy_fk(go.double().numpy(), bp.double().numpy(), rest)
    np.testing.assert_allclose(joints.double().numpy(), exp_joints, atol=1e-5, rtol=0)
    np.testing.assert_allclose(glob.double().numpy(), exp_rots, atol=1e-5, rtol=0)


def test_forward_kinematics_with_custom_rest_joints_matches_scipy():
    go, bp = random_pose(4, 1)
    g = torch.Generator().manual_seed(2)
    rest = skeleton.rest_joints(torch.float64) + 0.05 * torch.randn(24, 3, generator=g, dtype=torch.float64)
    rest[0] = torch.tensor([0.1, 0.9, -0.2], dtype=torch.float64)  # the root stays where the rest pose puts it
    joints, _ = pg.forward_kinematics(go, bp, rest_joints=rest)
    exp, _ = scipy_fk(go.numpy(), bp.numpy(), rest.numpy())
    np.testing.assert_allclose(joints.numpy(), exp, atol=1e-10, rtol=0)


def test_zero_pose_gives_rest_skeleton_and_bones_keep_their_length():
    go, bp = random_pose(6, 3, scale=1.5)
    joints, _ = pg.forward_kinematics(go, bp)
    rest = skeleton.rest_joints(torch.float64)
    zero, rots = pg.forward_kinematics(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 23, 3, dtype=torch.float64))
    torch.testing.assert_close(zero[0], rest)
    torch.testing.assert_close(rots[0], torch.eye(3, dtype=torch.float64).expand(24, 3, 3))
    torch.testing.assert_close(kinematics.bone_lengths(joints), kinematics.bone_lengths(rest).expand(6, -1))


def test_global_orient_rotates_the_whole_body_about_the_pelvis():
    _, bp = random_pose(3, 4)
    zero = torch.zeros(3, 3, dtype=torch.float64)
    turned = torch.tensor([[0.0, np.pi / 2, 0.0]] * 3, dtype=torch.float64)
    j0, _ = pg.forward_kinematics(zero, bp)
    j1, _ = pg.forward_kinematics(turned, bp)
    r = axis_angle_to_matrix(turned[:1])[0]
    torch.testing.assert_close(j1, j0 @ r.T)


def test_batch_rigid_transform_accepts_batched_rest_joints():
    go, bp = random_pose(3, 5)
    rots = kinematics.pose_to_rotations(go, bp)
    rest = skeleton.rest_joints(torch.float64)
    a, ga = kinematics.batch_rigid_transform(rots, rest)
    b, gb = kinematics.batch_rigid_transform(rots, rest.expand(3, -1, -1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)


def test_gradcheck_forward_kinematics():
    go, bp = random_pose(2, 6)
    go.requires_grad_()
    bp.requires_grad_()
    # fast_mode checks random projections of the Jacobian (the full 72 x 576 Jacobian takes ~15 s here).
    assert torch.autograd.gradcheck(lambda a, b: pg.forward_kinematics(a, b), (go, bp), fast_mode=True)


@pytest.mark.parametrize(
    "go_shape,bp_shape,needle",
    [
        ((2, 3), (2, 69), "(B, 23, 3)"),
        ((2, 3), (2, 24, 3), "(B, 23, 3)"),
        ((2, 1, 3), (2, 23, 3), "(B, 3)"),
        ((3,), (1, 23, 3), "(B, 3)"),
    ],
)
def test_malformed_pose_shapes_name_the_expected_shape(go_shape, bp_shape, needle):
    with pytest.raises(pg.ShapeError) as info:
        pg.forward_kinematics(torch.zeros(go_shape), torch.zeros(bp_shape))
    assert needle in str(info.value)
    assert "got" in str(info.value)


def test_flat_pose_message_says_how_to_reshape():
    with pytest.raises(pg.ShapeError, match=r"view\(-1, 23, 3\)"):
        pg.forward_kinematics(torch.zeros(2, 3), torch.zeros(2, 69))


def test_batch_mismatch_and_bad_values_are_refused():
    with pytest.raises(pg.ShapeError, match="same batch size"):
        pg.forward_kinematics(torch.zeros(2, 3), torch.zeros(3, 23, 3))
    bad = torch.zeros(1, 23, 3)
    bad[0, 5, 1] = float("nan")
    with pytest.raises(pg.ShapeError, match="NaN"):
        pg.forward_kinematics(torch.zeros(1, 3), bad)
    with pytest.raises(pg.ShapeError, match="floating-point"):
        pg.forward_kinematics(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 23, 3, dtype=torch.long))
    with pytest.raises(pg.ShapeError, match="torch.Tensor"):
        pg.forward_kinematics(np.zeros((1, 3)), torch.zeros(1, 23, 3))


def test_skeleton_body_matches_forward_kinematics():
    go, bp = random_pose(4, 7)
    body = pg.create_body_model()
    out = body(go, bp)
    joints, glob = pg.forward_kinematics(go, bp)
    torch.testing.assert_close(out.joints, joints)
    torch.testing.assert_close(out.rotations, glob)
    assert out.vertices is None
    again = body.forward_rotmats(kinematics.pose_to_rotations(go, bp))
    torch.testing.assert_close(again.joints, joints)
