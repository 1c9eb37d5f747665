"""Latent priors P_z: normal (the paper's best), uniform on [-1, 1]^d, spherical (unit sphere)."""

from __future__ import annotations

import torch

import posegen_core as pg


class NormalPrior(pg.Prior):
    """Standard normal N(0, I): the paper's best prior (Table 7)."""

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, dim, generator=generator)


class UniformPrior(pg.Prior):
    """Uniform on the cube [-1, 1]^d."""

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, dim, generator=generator) * 2.0 - 1.0


class SphericalPrior(pg.Prior):
    """Uniform on the unit sphere S^(d-1): a normal draw divided by its norm."""

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, dim, generator=generator)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


@pg.hookimpl
def posegen_register_priors(register):
    register("normal", NormalPrior)
    register("uniform", UniformPrior)
    register("spherical", SphericalPrior)
