"""3D ellipsoids in the camera frame -> screen ellipses with a depth profile (the splat's per-primitive parameters).

The screen shape is the EWA approximation (the projection's Jacobian at the centre maps the 3D covariance to 2D),
plus a 0.3 px^2 low-pass so no primitive falls between pixels. The depth profile is the ellipsoid's chord along
the view ray (its half-length is the dome height) and the tilt of its conjugate plane (so a limb pointing at the
camera gets nearer along its length). Everything is plain differentiable torch on (B, K) tensors.
"""

from __future__ import annotations

import torch

import posegen_core as pg

from . import splat as sp
from .body import Ellipsoids

LOW_PASS_PX2 = 0.3
EDGE_PX = 1.2  # soft rim width in pixels
NEAR = 0.05  # metres: primitives whose centre is nearer are dropped


def screen_parameters(
    ell: Ellipsoids, colours: torch.Tensor, intrinsics: pg.Intrinsics
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return params (B*K, 13) in splat's layout and a validity mask (B*K,) (centre in front of the camera)."""
    c = ell.centres
    x, y, z_raw = c.unbind(-1)
    valid = z_raw > NEAR
    z = z_raw.clamp_min(NEAR)
    fx, fy = intrinsics.fx, intrinsics.fy
    zero = torch.zeros_like(z)
    jac = torch.stack(
        [torch.stack([fx / z, zero, -fx * x / (z * z)], -1), torch.stack([zero, fy / z, -fy * y / (z * z)], -1)], -2
    )  # (B, K, 2, 3)
    cov2 = jac @ ell.cov @ jac.transpose(-1, -2)
    sxx = cov2[..., 0, 0] + LOW_PASS_PX2
    syy = cov2[..., 1, 1] + LOW_PASS_PX2
    sxy = cov2[..., 0, 1]
    det = sxx * syy - sxy * sxy
    con_a, con_b, con_c = syy / det, -sxy / det, sxx / det
    mu_x = fx * x / z + intrinsics.cx
    mu_y = fy * y / z + intrinsics.cy
    minor_px = torch.sqrt(2.0 * det / (sxx + syy))  # ~ the smaller semi-axis (exact for circles)
    edge = (EDGE_PX / minor_px).clamp(0.05, 0.6)
    # Depth: chord of the ellipsoid along the view ray, and the slope of its conjugate (mid-chord) plane.
    v = c / c.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    n = (ell.cov_inv @ v[..., None])[..., 0]
    half_chord = torch.rsqrt((v * n).sum(-1).clamp_min(1e-12))
    nz = n[..., 2].clamp_min(1e-3 * n.norm(dim=-1) + 1e-9)
    slope_x = -(n[..., 0] / nz) * z / fx
    slope_y = -(n[..., 1] / nz) * z / fy
    bulge = half_chord * v[..., 2]
    params = torch.stack(
        [mu_x, mu_y, con_a, con_b, con_c, edge, z, slope_x, slope_y, bulge], -1
    )
    params = torch.cat([params, colours], -1)
    return params.reshape(-1, sp.NUM_PARAMS), valid.reshape(-1)
