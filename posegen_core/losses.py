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


def mean_joint_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """e = mean over samples and joints of ||X - X_hat||_2 (metres)."""
    return (pred - target).norm(dim=-1).mean()


def feedback_loss(error: torch.Tensor, scenario: str, c: float = 1.0) -> torch.Tensor:
    """L_fb: ``ood`` -> c - e (seek what the estimator fails on, up to c); ``ind`` -> e (seek what it handles)."""
    if scenario == "ood":
        return c - error
    if scenario == "ind":
        return error
    raise ConfigError(f"unknown scenario '{scenario}'; expected one of {', '.join(SCENARIOS)}.")


def generator_objective(adv: torch.Tensor, feedback: torch.Tensor | None, w1: float = 1.0, w2: float = 0.1) -> torch.Tensor:
    """Eq. 8: L_G = w1 * L_adv + w2 * L_fb (feedback None when it is not computed this step)."""
    return w1 * adv if feedback is None else w1 * adv + w2 * feedback
