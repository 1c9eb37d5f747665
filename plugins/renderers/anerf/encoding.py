"""A-NeRF's skeleton-relative encoding (reference/anerf_notes.md section 1.3).

For a sample point x and joint j with world-to-joint transform (G_j, J_j): ``p_j = G_j^T (x - J_j)``.
The density input is ``[cutoff * PE(|p_j|) (block-major over joints) | p_j / |p_j|]`` and the colour input is
``cutoff * PE(normalize(G_j^T d))`` for the ray direction d. The cutoff weight ``w_j = 1 - sigmoid(tau (|p_j| - c_j))``
fades out joints farther than ``c_j`` and multiplies the raw value and every sine/cosine term. The layouts (block-major:
[x, sin(1x), cos(1x), sin(2x), cos(2x), ...], frequencies 2^k without a pi factor) match the official weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import NUM_JOINTS


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """(..., D) -> (..., 1 + 2 n_freqs, D): the raw value, then sin and cos at frequencies 1, 2, 4, ... per block."""
    if n_freqs == 0:
        return x.unsqueeze(-2)
    freqs = 2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)
    xf = x.unsqueeze(-2) * freqs[:, None]  # (..., L, D)
    sc = torch.stack([torch.sin(xf), torch.cos(xf)], dim=-2).flatten(-3, -2)  # (..., 2L, D): sin, cos per frequency
    return torch.cat([x.unsqueeze(-2), sc], dim=-2)


class CutoffEncoder(nn.Module):
    """Holds the cutoff distances (24,) and the sharpness ``tau`` (the official ``embed``/``embeddirs`` state)."""

    def __init__(self, n_freqs: int, cutoff_dist: float = 0.5, tau: float = 20.0) -> None:
        super().__init__()
        self.n_freqs = n_freqs
        self.register_buffer("cutoff_dist", torch.full((NUM_JOINTS,), float(cutoff_dist)))
        self.register_buffer("tau", torch.tensor(float(tau)))

    def weights(self, dist: torch.Tensor) -> torch.Tensor:
        """Cutoff weights (..., 24) for joint distances (..., 24)."""
        return 1.0 - torch.sigmoid(self.tau * (dist - self.cutoff_dist))

    def negligible_beyond(self, eps: float) -> float:
        """Distance past which every cutoff weight is below ``eps`` (used to skip far samples)."""
        return float(self.cutoff_dist.max()) + float(torch.log(torch.tensor((1.0 - eps) / eps))) / float(self.tau)


class PointEncoder(CutoffEncoder):
    """Relative distance (positional encoding + cutoff) and relative direction: (..., 24, 3) -> (..., 432)."""

    def forward(self, local: torch.Tensor, dist: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``local`` are the sample's joint-local coordinates p_j (``dist`` their norms, if already known); returns
        the density input and the cutoff weights."""
        if dist is None:
            dist = local.norm(dim=-1)  # (..., 24)
        w = self.weights(dist)
        v = positional_encoding(dist, self.n_freqs) * w.unsqueeze(-2)  # (..., 1+2L, 24)
        r = local / dist.unsqueeze(-1).clamp_min(1e-12)
        return torch.cat([v.flatten(-2), r.flatten(-2)], dim=-1), w


class DirectionEncoder(CutoffEncoder):
    """Relative ray direction normalize(G_j^T d) with positional encoding, weighted by the point cutoff."""

    def per_ray(self, local_dirs: torch.Tensor) -> torch.Tensor:
        """(R, 24, 3) joint-local ray directions -> unweighted encoding (R, 1+2L, 24, 3) (constant along a ray)."""
        dd = local_dirs / local_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return positional_encoding(dd.flatten(-2), self.n_freqs).unflatten(-1, (NUM_JOINTS, 3))

    def forward(self, per_ray: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """Weight the per-ray encoding (R, 1+2L, 24, 3) by this encoder's cutoff of the sample distances (R, S, 24)."""
        w = self.weights(dist)
        return (per_ray.unsqueeze(1) * w[:, :, None, :, None]).flatten(-3)
