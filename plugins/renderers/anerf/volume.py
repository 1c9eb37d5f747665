"""Volume rendering (the paper's eq. 12, official ``raw2outputs``): colour = sum_i T_i alpha_i c_i."""

from __future__ import annotations

import torch


def sample_spacing(z: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Distances between consecutive samples (R, S), the last one 1e10, times the (unnormalised) ray length."""
    delta = torch.cat([z[:, 1:] - z[:, :-1], torch.full_like(z[:, :1], 1e10)], -1)
    return delta * dirs.norm(dim=-1, keepdim=True)


def activate(raw: torch.Tensor, delta: torch.Tensor, noise: torch.Tensor | None = None,
             density_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw network output (..., 4) -> colour in [-0.001, 1.001] and opacity alpha = 1 - exp(-relu(sigma) delta)."""
    rgb = torch.sigmoid(raw[..., :3]) * (1.0 + 2 * 0.001) - 0.001
    sigma = raw[..., 3] / density_scale
    if noise is not None:
        sigma = sigma + noise
    return rgb, 1.0 - torch.exp(-torch.relu(sigma) * delta)


def composite(rgb: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights w_i = alpha_i prod_{k<i} (1 - alpha_k + 1e-10); returns (colour (R, 3), accumulated alpha (R,), w)."""
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    w = alpha * trans
    return (w[..., None] * rgb).sum(-2), w.sum(-1), w
