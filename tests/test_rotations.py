"""Rotation conversions: checked against scipy, round trips (also near 0 and near pi), gradchecks in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posegen_core import rotations as rot


def random_axis_angle(n: int, seed: int, max_angle: float = math.pi, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=dtype) * max_angle
    return axis * angle


def edge_axis_angles(dtype=torch.float64) -> torch.Tensor:
    """Angles at the numerically hard ends: exactly 0, tiny, near pi and exactly pi, about several axes."""
    axes = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [-0.3, 0.8, 0.2], [0.1, -0.2, -0.97]], dtype=dtype),
        dim=-1,
    )
    angles = torch.tensor([0.0, 1e-9, 1e-6, 1e-4, 1e-3, 0.5, math.pi - 1e-3, math.pi - 1e-6, math.pi], dtype=dtype)
    return (axes[:, None, :] * angles[None, :, None]).reshape(-1, 3)


def same_rotation_axis_angle(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    """Axis-angle vectors describe the same rotation (at angle pi, v and -v are the same rotation)."""
    ma, mb = rot.axis_angle_to_matrix(a), rot.axis_angle_to_matrix(b)
    torch.testing.assert_close(ma, mb, atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------- against scipy
def test_axis_angle_to_matrix_matches_scipy():
    aa = torch.cat([random_axis_angle(200, 0), edge_axis_angles()])
    expected = Rotation.from_rotvec(aa.numpy()).as_matrix()
    np.testing.assert_allclose(rot.axis_angle_to_matrix(aa).numpy(), expected, atol=1e-12)


def test_matrix_to_axis_angle_matches_scipy_away_from_pi():
    aa = random_axis_angle(200, 1, max_angle=math.pi - 1e-3)
    m = torch.from_numpy(Rotation.from_rotvec(aa.numpy()).as_matrix())
    np.testing.assert_allclose(rot.matrix_to_axis_angle(m).numpy(), aa.numpy(), atol=1e-9)


def test_quaternion_is_scalar_first_and_matches_scipy():
    aa = random_axis_angle(100, 2)
    q = rot.axis_angle_to_quaternion(aa).numpy()
    xyzw = Rotation.from_rotvec(aa.numpy()).as_quat()
    expected = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    expected *= np.sign(expected[:, :1])  # scipy may return either sign
    q *= np.sign(q[:, :1])
    np.testing.assert_allclose(q, expected, atol=1e-12)


def test_matrix_to_quaternion_matches_scipy_for_every_branch():
    # Rotations by pi about x, y, z and random ones exercise all four of Shepperd's branches.
    aa = torch.cat([random_axis_angle(300, 3), torch.eye(3, dtype=torch.float64) * math.pi])
    m = rot.axis_angle_to_matrix(aa)
    q = rot.matrix_to_quaternion(m)
    assert bool((q[:, 0] >= 0).all()), "the quaternion convention is w >= 0"
    xyzw = Rotation.from_matrix(m.numpy()).as_quat()
    expected = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    # q and -q are the same rotation: compare up to sign.
    dots = np.abs((q.numpy() * expected).sum(1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
def test_axis_angle_matrix_round_trip_including_edges(dtype, atol):
    aa = torch.cat([random_axis_angle(300, 4, dtype=dtype), edge_axis_angles(dtype)])
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    away_from_pi = aa.norm(dim=-1) < math.pi - 1e-2
    torch.testing.assert_close(back[away_from_pi], aa[away_from_pi], atol=atol, rtol=0)
    # Near pi the axis sign is ambiguous; the rotation must still be the same.
    same_rotation_axis_angle(back, aa, atol=10 * atol)
    assert bool((back.norm(dim=-1) <= math.pi + 1e-6).all()), "angles come back in [0, pi]"


def test_small_angles_keep_full_relative_precision():
    aa = torch.tensor([[1e-9, 0.0, 0.0], [0.0, 3e-7, -4e-7], [0.0, 0.0, 0.0]], dtype=torch.float64)
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    torch.testing.assert_close(back, aa, atol=1e-15, rtol=1e-6)
    back_q = rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(aa))
    torch.testing.assert_close(back_q, aa, atol=1e-18, rtol=1e-9)


def test_quaternion_round_trips():
    aa = torch.cat([random_axis_angle(300, 5), edge_axis_angles()])
    q = rot.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=q.dtype))
    torch.testing.assert_close(rot.quaternion_to_matrix(q), rot.axis_angle_to_matrix(aa), atol=1e-12, rtol=0)
    same_rotation_axis_angle(rot.quaternion_to_axis_angle(q), aa, atol=1e-9)
    m = rot.axis_angle_to_matrix(aa)
    torch.testing.assert_close(rot.quaternion_to_matrix(rot.matrix_to_quaternion(m)), m, atol=1e-12, rtol=0)


def test_quaternion_to_matrix_normalises_its_input():
    q = rot.axis_angle_to_quaternion(random_axis_angle(20, 6))
    torch.testing.assert_close(rot.quaternion_to_matrix(3.5 * q), rot.quaternion_to_matrix(q))
    torch.testing.assert_close(rot.quaternion_to_matrix(-q), rot.quaternion_to_matrix(q))


def test_rot6d_round_trip_and_spin_layout():
    m = rot.axis_angle_to_matrix(torch.cat([random_axis_angle(200, 7), edge_axis_angles()]))
    six = rot.matrix_to_rot6d(m)
    # SPIN's layout: a 3x2 matrix in row-major order whose columns are R's first two columns.
    torch.testing.assert_close(six[:, 0::2], m[:, :, 0])
    torch.testing.assert_close(six[:, 1::2], m[:, :, 1])
    torch.testing.assert_close(rot.rot6d_to_matrix(six), m, atol=1e-12, rtol=0)


def test_rot6d_orthonormalises_arbitrary_input_like_spin():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64)
    r = rot.rot6d_to_matrix(x)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    torch.testing.assert_close(r.transpose(-1, -2) @ r, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))
    # Gram-Schmidt keeps the direction of the first column and the plane of the first two.
    a1 = x.view(50, 3, 2)[..., 0]
    torch.testing.assert_close(r[..., 0], a1 / a1.norm(dim=-1, keepdim=True))


def test_conversions_keep_leading_batch_dimensions():
    aa = random_axis_angle(24, 9).view(2, 4, 3, 3)
    m = rot.axis_angle_to_matrix(aa)
    assert m.shape == (2, 4, 3, 3, 3)
    assert rot.matrix_to_axis_angle(m).shape == (2, 4, 3, 3)
    assert rot.matrix_to_quaternion(m).shape == (2, 4, 3, 4)
    assert rot.matrix_to_rot6d(m).shape == (2, 4, 3, 6)
    assert rot.rot6d_to_matrix(rot.matrix_to_rot6d(m)).shape == m.shape


def test_geodesic_angle_and_axis_rotations():
    aa = random_axis_angle(50, 10, max_angle=math.pi - 1e-3)
    m = rot.axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=torch.float64).expand_as(m)
    torch.testing.assert_close(rot.geodesic_angle(eye, m), aa.norm(dim=-1), atol=1e-7, rtol=0)
    angle = torch.tensor([0.3, -1.2], dtype=torch.float64)
    for i, axis in enumerate("xyz"):
        vec = torch.zeros(2, 3, dtype=torch.float64)
        vec[:, i] = angle
        torch.testing.assert_close(rot.rotation_about_axis(axis, angle), rot.axis_angle_to_matrix(vec))


# ------------------------------------------------------------------------------------------- gradients
def test_gradcheck_axis_angle_to_matrix():
    aa = torch.cat([random_axis_angle(6, 11), torch.tensor([[1e-5, -2e-5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)])
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa.requires_grad_(),))


def test_gradient_of_axis_angle_to_matrix_is_finite_at_zero():
    aa = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    m = rot.axis_angle_to_matrix(aa)
    (m * torch.arange(9, dtype=torch.float64).view(3, 3)).sum().backward()
    # d R / d v at 0 is the skew generator: finite and exactly what skew() gives.
    assert torch.isfinite(aa.grad).all()
    assert aa.grad.abs().sum() > 0


def test_gradcheck_matrix_to_axis_angle_away_from_pi():
    aa = random_axis_angle(6, 12, max_angle=2.5)
    m = rot.axis_angle_to_matrix(aa).requires_grad_()
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (m,))


def test_gradcheck_rot6d_and_quaternions():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.rot6d_to_matrix, (x,))
    q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (q,))
    aa = random_axis_angle(5, 14, max_angle=2.5).requires_grad_()
    assert torch.autograd.gradcheck(rot.axis_angle_to_quaternion, (aa,))
