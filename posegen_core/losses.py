"""The method's losses as pure functions (paper eqs. 8-10 and 13; defaults from the official code)."""

from __future__ import annotations

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
