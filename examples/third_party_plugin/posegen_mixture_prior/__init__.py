"""A Gaussian-mixture latent prior for posegen, shipped as a separate package (an example third-party plugin).

Uses only posegen's public API (``import posegen_core as pg``) and registers through the ``posegen`` entry point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

import posegen_core as pg

#: The official PoseGen code's (unused) 5-mode sampler: every coordinate of a mode's mean equals one of these.
OFFICIAL_CENTRES: tuple[float, ...] = (-10.0, -5.0, 0.0, 5.0, 10.0)


class GaussianMixturePrior(pg.Prior):
    """Mixture of isotropic Gaussians: pick a mode per sample (by ``weights``), then add N(0, std^2 I).

    ``centres`` is either K numbers (mode k has mean centres[k] * (1, ..., 1), as in the official code) or a (K, dim)
    table of mode means for a fixed ``dim``.
    """

    def __init__(
        self,
        centres: Sequence[float] | Sequence[Sequence[float]] | torch.Tensor = OFFICIAL_CENTRES,
        std: float = 1.0,
        weights: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        means = torch.as_tensor(centres, dtype=torch.float32)
        if means.dim() not in (1, 2) or means.shape[0] == 0 or not bool(torch.isfinite(means).all()):
            raise pg.ConfigError(
                f"mixture centres must be K finite numbers or a (K, dim) table; got shape {tuple(means.shape)}."
            )
        if not std > 0:
            raise pg.ConfigError(f"mixture std must be positive; got {std}.")
        k = means.shape[0]
        w = torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (k,) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise pg.ConfigError(
                f"mixture weights must be {k} non-negative numbers (one per centre) with a positive sum; got {w.tolist()}."
            )
        self.means = means
        self.std = float(std)
        self.weights = w / w.sum()

    def sample_with_modes(
        self, n: int, dim: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) latent codes and the (n,) index of the mode each one was drawn from."""
        if self.means.dim() == 2 and self.means.shape[1] != dim:
            raise pg.ConfigError(
                f"this mixture's centres are {self.means.shape[1]}-dimensional; asked for dim={dim}. "
                "Pass centres with one column per latent dimension, or K numbers."
            )
        modes = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        means = self.means[modes]
        if means.dim() == 1:
            means = means[:, None].expand(n, dim)
        return means + self.std * torch.randn(n, dim, generator=generator), modes

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_modes(n, dim, generator)[0]


@pg.hookimpl
def posegen_register_priors(register):
    register(
        "mixture", GaussianMixturePrior,
        description="Gaussian mixture (default: the official code's 5 modes at -10, -5, 0, 5, 10).",
    )
