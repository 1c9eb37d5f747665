"""Sample depths along rays: stratified coarse samples and importance (inverse-CDF) fine samples, as in A-NeRF."""

from __future__ import annotations

import torch


def coarse_depths(
    near: torch.Tensor, far: torch.Tensor, n: int, perturb: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(R,) bounds -> (R, n) depths linear in depth; jittered within their bins when ``perturb`` (training)."""
    t = torch.linspace(0.0, 1.0, n, dtype=near.dtype, device=near.device)
    z = near[:, None] * (1.0 - t) + far[:, None] * t
    if perturb:
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        upper = torch.cat([mids, z[:, -1:]], -1)
        lower = torch.cat([z[:, :1], mids], -1)
        u = torch.rand(z.shape, generator=generator, dtype=z.dtype, device="cpu" if generator is None
                       else generator.device).to(z.device)
        z = lower + (upper - lower) * u
    return z


def fine_pdf(weights: torch.Tensor, single_net: bool) -> torch.Tensor:
    """The (unnormalised) pdf of the fine samples over the coarse bins from the coarse weights (R, S) -> (R, S - 2),
    as the official ``isample_from_lineseg``: the interior weights for two networks; for one network
    (``is_only``) a widened, floored pdf 0.5 (max(w_{k-1}, w_k) + max(w_k, w_{k+1})) + 0.01, which also samples
    around the surface and in empty space (the single network re-uses its coarse outputs there)."""
    if not single_net:
        return weights[:, 1:-1]
    w_k = weights[:, 1:-1]
    return 0.5 * (torch.maximum(weights[:, :-2], w_k) + torch.maximum(w_k, weights[:, 2:])) + 0.01


def importance_depths(
    bins: torch.Tensor, weights: torch.Tensor, n: int, deterministic: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``n`` depths per ray from the piecewise-constant pdf of ``weights`` (R, B) over ``bins`` (R, B + 1).

    Deterministic (evenly spaced quantiles) at test time as in A-NeRF; the result is differentiable in the weights
    and bins (callers detach it where the official code does).
    """
    w = weights + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n, dtype=cdf.dtype, device=cdf.device).expand(cdf.shape[0], n)
    else:
        u = torch.rand((cdf.shape[0], n), generator=generator, dtype=cdf.dtype, device="cpu" if generator is None
                       else generator.device).to(cdf.device)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.detach().contiguous(), u, right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    c0, c1 = cdf.gather(-1, below), cdf.gather(-1, above)
    b0, b1 = bins.gather(-1, below), bins.gather(-1, above)
    denom = c1 - c0
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return b0 + (u - c0) / denom * (b1 - b0)
