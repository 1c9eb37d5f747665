"""The method's losses as pure functions (paper eqs. 8-10 and 13; defaults from the official code)."""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

SCENARIOS = ("ood", "ind")


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 10: E_real[(D(theta) - 1)^2] + E_z[D(G(z))^2], averaged over heads (the official code halves it)."""
    return 0.5 * (((real_scores - 1.0) ** 2).mean() + (fake_scores**2).mean())


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 9: E_z[(D(G(z)) - 1)^2] (halved like the official code, so that w1 = 1 matches it)."""
    return 0.5 * ((fake_scores - 1.0) ** 2).mean()


def per_sample_joint_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """e_i = mean over joints of ||X - X_hat||_2 (metres), one value per sample: (B, J, 3) -> (B,)."""
    return (pred - target).norm(dim=-1).mean(-1)


FEEDBACK_SHAPES = ("linear", "hinge", "target")


def feedback_loss(error: torch.Tensor, scenario: str, c: float = 1.0, shape: str = "linear") -> torch.Tensor:
    """L_fb from per-sample errors (B,) or their mean.

    ``ood`` seeks what the estimator fails on, in one of three shapes:
    - ``linear``: c - e, the paper's eq. and the official code's unclamped 1 - e (c only shifts the loss);
    - ``hinge``: mean of max(0, c - e_i): failures *up to* c (the paper's wording), no push past it;
    - ``target``: mean of |c - e_i|: errors *near* c, pulling samples back from beyond it too, so that G keeps its
      samples at the edge of what the estimator handles instead of drifting to the single worst viewpoint.
    ``ind`` -> e: seek what it handles.
    """
    if shape not in FEEDBACK_SHAPES:
        raise ConfigError(f"unknown feedback shape '{shape}'; expected one of {', '.join(FEEDBACK_SHAPES)}.")
    if scenario == "ood":
        if shape == "hinge":
            return torch.relu(c - error).mean()
        if shape == "target":
            return (c - error).abs().mean()
        return (c - error).mean()
    if scenario == "ind":
        return error.mean()
    raise ConfigError(f"unknown scenario '{scenario}'; expected one of {', '.join(SCENARIOS)}.")


def spread_loss(points: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """-mean_i log(distance to the nearest other point), (B, D) -> scalar: minimising it maximises the batch's
    nearest-neighbour (Kozachenko-Leonenko) entropy estimate, so generated samples spread out instead of collapsing
    onto one mode."""
    d = torch.cdist(points, points) + torch.eye(len(points), dtype=points.dtype, device=points.device) * 1e6
    return -torch.log(d.min(dim=1).values + eps).mean()


def generator_objective(adv: torch.Tensor, feedback: torch.Tensor | None, w1: float = 1.0, w2: float = 0.1) -> torch.Tensor:
    """Eq. 8: L_G = w1 * L_adv + w2 * L_fb (feedback None when it is not computed this step)."""
    return w1 * adv if feedback is None else w1 * adv + w2 * feedback


def banded_ratio_loss(error: torch.Tensor, reference: torch.Tensor, beta: float, sigma: float,
                      floor: float = 1e-3) -> torch.Tensor:
    """PoseAug's relative, banded hardness: r_i = e_i / e_ref_i (the same pose's error from a reference view, no
    gradient), loss = mean_i (r_i - beta)^2 counted only where |r_i - beta| > sigma. It holds r inside the band
    [beta - sigma, beta + sigma] instead of maximising the error: hard, but not impossible. ``floor`` (metres) keeps
    the ratio finite when the reference error is tiny."""
    ratio = error / reference.detach().clamp_min(floor)
    gap = ratio - beta
    return torch.where(gap.abs() > sigma, gap**2, torch.zeros_like(gap)).mean()


def linear_schedule(start: float, end: float, progress: float) -> float:
    """start + (end - start) * progress, progress clamped to [0, 1]: PoseAug's beta rising over the epochs."""
    return start + (end - start) * min(1.0, max(0.0, progress))


def elevation_prior_loss(elevation: torch.Tensor, max_elevation: float) -> torch.Tensor:
    """Ties a batch of camera elevations (radians) to a camera prior: cameras uniform on the sphere's band
    |elevation| <= max_elevation (sin(elevation) uniform). The loss is the squared 1-D Wasserstein-2 distance between
    the batch and the prior, from sorted samples against the prior's quantiles, so the batch may move within the
    prior but not pile up at one elevation (e.g. straight top views)."""
    n = elevation.numel()
    q = (torch.arange(n, dtype=elevation.dtype, device=elevation.device) + 0.5) / n
    s = math.sin(max_elevation)
    quantiles = torch.asin((2 * q - 1) * s)
    return ((torch.sort(elevation.reshape(-1)).values - quantiles) ** 2).mean()
