"""The built-in latent priors: their distributions (moments, ranges, norms, KS tests) and seeded determinism."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

import posegen_core as pg

N, DIM = 20000, 8


def draw(name: str, n: int = N, dim: int = DIM, seed: int = 0) -> torch.Tensor:
    return pg.create_prior(name).sample(n, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["normal", "uniform", "spherical"])
def test_priors_are_registered_and_return_n_by_dim(name):
    prior = pg.create_prior(name)
    assert isinstance(prior, pg.Prior)
    z = prior.sample(5, 32, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 32) and z.dtype == torch.float32
    assert bool(torch.isfinite(z).all())


@pytest.mark.parametrize("name", ["normal", "uniform", "spherical"])
def test_same_seed_same_draw_and_the_global_rng_is_untouched(name):
    torch.manual_seed(123)
    expected_global = torch.rand(4)
    torch.manual_seed(123)
    a = draw(name, 64, 16, seed=7)
    assert torch.equal(torch.rand(4), expected_global), "the prior must draw from the generator it is given"
    assert torch.equal(a, draw(name, 64, 16, seed=7))
    assert not torch.equal(a, draw(name, 64, 16, seed=8))


def test_normal_moments_and_marginals():
    z = draw("normal").double()
    assert z.mean(0).abs().max() < 0.03  # standard error 1/sqrt(N) = 0.007
    cov = torch.cov(z.T)
    torch.testing.assert_close(cov, torch.eye(DIM, dtype=torch.float64), atol=0.04, rtol=0)
    assert stats.kstest(z[:, 0].numpy(), "norm").pvalue > 1e-3


def test_uniform_range_and_moments():
    z = draw("uniform").double()
    assert z.min() >= -1.0 and z.max() <= 1.0
    assert z.min() < -0.99 and z.max() > 0.99, "the whole cube is covered"
    assert z.mean(0).abs().max() < 0.03
    torch.testing.assert_close(z.var(0), torch.full((DIM,), 1 / 3, dtype=torch.float64), atol=0.02, rtol=0)
    assert stats.kstest(z[:, 3].numpy(), "uniform", args=(-1.0, 2.0)).pvalue > 1e-3


def test_spherical_unit_norm_and_isotropy():
    z = draw("spherical").double()
    torch.testing.assert_close(z.norm(dim=1), torch.ones(N, dtype=torch.float64))
    assert z.mean(0).abs().max() < 0.02
    # Uniform on S^(d-1): E[z z^T] = I / d.
    second = z.T @ z / N
    torch.testing.assert_close(second, torch.eye(DIM, dtype=torch.float64) / DIM, atol=0.01, rtol=0)


def test_spherical_in_three_dimensions_has_uniform_coordinates():
    """Archimedes: each coordinate of a uniform point on the 2-sphere is uniform on [-1, 1]."""
    z = draw("spherical", n=5000, dim=3, seed=3).double()
    for axis in range(3):
        assert stats.kstest(z[:, axis].numpy(), "uniform", args=(-1.0, 2.0)).pvalue > 1e-3


def test_prior_descriptions_come_from_the_docstrings():
    infos = {p.name: p for p in pg.list_plugins()["prior"]}
    assert {"normal", "uniform", "spherical"} <= set(infos)
    assert "normal" in infos["normal"].description.lower()
    assert "[-1, 1]" in infos["uniform"].description
    assert "sphere" in infos["spherical"].description
