"""Rotation conversions, batched over leading dimensions and differentiable (the one place they live).

Conventions: axis-angle vectors are axis * angle (radians); matrices act on column vectors; quaternions are
(w, x, y, z); the 6D representation is SPIN's: the 6 numbers are a 3x2 matrix in row-major order whose columns are
the first two columns of R.
"""

from __future__ import annotations

import torch


def _sinc_terms(angle2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sin(t)/t and (1 - cos t)/t^2 from t^2, exact near 0 (Taylor) and safe for autograd."""
    small = angle2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(angle2), angle2)
    t = torch.sqrt(safe2)
    a = torch.where(small, 1.0 - angle2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - angle2 / 24.0, (1.0 - torch.cos(t)) / safe2)
    return a, b


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (..., 3) -> (..., 3, 3)."""
    angle2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    a, b = _sinc_terms(angle2)
    k = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternion (w, x, y, z) with w >= 0, stable for every rotation."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate formulas; pick the one with the largest denominator (Shepperd's method).
    q_abs = torch.sqrt(
        torch.clamp(
            torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1),
            min=1e-12,
        )
    )
    m21_12 = m[..., 2, 1] - m[..., 1, 2]
    m02_20 = m[..., 0, 2] - m[..., 2, 0]
    m10_01 = m[..., 1, 0] - m[..., 0, 1]
    m10p01 = m[..., 1, 0] + m[..., 0, 1]
    m02p20 = m[..., 0, 2] + m[..., 2, 0]
    m21p12 = m[..., 2, 1] + m[..., 1, 2]
    cands = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m21_12, m02_20, m10_01], -1),
            torch.stack([m21_12, q_abs[..., 1] ** 2, m10p01, m02p20], -1),
            torch.stack([m02_20, m10p01, q_abs[..., 2] ** 2, m21p12], -1),
            torch.stack([m10_01, m02p20, m21p12, q_abs[..., 3] ** 2], -1),
        ],
        -2,
    ) / (2.0 * q_abs[..., None])
    best = q_abs.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) (w, x, y, z), any norm -> (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (..., 3), angle in [0, pi]."""
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s2 = (v * v).sum(-1, keepdim=True)
    small = s2 < 1e-12
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    angle = 2.0 * torch.atan2(s, q[..., :1])
    scale = torch.where(small, 2.0 / q[..., :1].clamp_min(1e-12) * (1 - s2 / (3 * q[..., :1].clamp_min(1e-12) ** 2)), angle / s)
    return v * scale


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    angle2 = (aa * aa).sum(-1, keepdim=True)
    small = angle2 < 1e-12
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    half_sinc = torch.where(small, 0.5 - angle2 / 48.0, torch.sin(angle / 2) / angle)
    w = torch.where(small, 1.0 - angle2 / 8.0, torch.cos(angle / 2))
    return torch.cat([w, aa * half_sinc], -1)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3), angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """SPIN's 6D -> rotation: (..., 6) -> (..., 3, 3).

    The 6 numbers form a 3x2 matrix (row-major); its columns a1, a2 are Gram-Schmidt-orthonormalised into b1, b2,
    b3 = b1 x b2, and R = [b1 b2 b3] column-wise.
    """
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, read as a 3x2 matrix row by row."""
    return m[..., :, :2].reshape(*m.shape[:-2], 6)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of r1^T r2, for (..., 3, 3) inputs."""
    rel = r1.transpose(-1, -2) @ r2
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.acos(cos)


def rotation_about_axis(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) about 'x', 'y' or 'z' by ``angle`` (...)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    rows = {
        "x": [i, o, o, o, c, -s, o, s, c],
        "y": [c, o, s, o, i, o, -s, o, c],
        "z": [c, -s, o, s, c, o, o, o, i],
    }[axis]
    return torch.stack(rows, -1).reshape(*angle.shape, 3, 3)
