"""Strategies: the three places where PoseGen methods differ, as plugins (``posegen_register_strategies``).

- ``FeedbackPath`` (role ``feedback``; built-ins ``render``, ``pose``, ``none``): how the estimator's error on G's
  batch is computed and how its gradient reaches G (through the rendered pixels, through forward kinematics only, or
  not at all). ``RunConfig.feedback`` names it.
- ``Hardness`` (role ``hardness``; built-ins ``paper``, ``banded``, ``split``): turns those errors into the feedback
  loss L_fb (eq. 8's second term) and, optionally, a viewpoint regulariser. ``RunConfig.hardness`` names it.
- ``DatasetSampler`` (role ``sampler``; built-ins ``generator``, ``target_like``, ``error_weighted``, ``filtered``):
  what the fine-tuning set holds. ``RunConfig.sampler`` names it.

A strategy is a small object; the loop calls it with plain tensors and a ``RunContext`` (posegen_core.stages.context).
Third-party packages register their own exactly as the built-ins do (docs/PLUGINS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from . import metrics
from .losses import per_sample_joint_error
from .scene import SceneBatch, source_viewpoints

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig
    from .stages.context import RunContext

ROLES = ("feedback", "hardness", "sampler")


class Strategy:
    """Base of every strategy; ``role`` says where the loop uses it."""

    role: ClassVar[str] = ""

    def start(self, ctx: "RunContext") -> None:
        """Called once when the stage that uses the strategy begins (e.g. to log a fallback)."""


@dataclass
class FeedbackBatch:
    """The estimator on one generated batch: ``pred`` and ``truth`` joints (B, 24, 3) carry G's gradient (as far as
    the feedback path lets it flow); ``reference_pred``/``reference_truth`` are the same poses seen from source-like
    views, without gradient, filled in when the hardness strategy ``needs_reference``."""

    pred: torch.Tensor
    truth: torch.Tensor
    scene: SceneBatch  # the rendered batch (in-loop fine-tuning reuses it)
    view_rotation: torch.Tensor  # (B, 3, 3) G's K
    progress: float  # 0 when feedback begins, 1 at the last GAN iteration (for schedules)
    reference_pred: torch.Tensor | None = None
    reference_truth: torch.Tensor | None = None

    def error(self) -> torch.Tensor:
        """Per-sample MPJPE (B,), metres."""
        return per_sample_joint_error(self.pred, self.truth)

    def articulation_error(self) -> torch.Tensor:
        """Per-sample PA-MPJPE (B,), metres: invariant to the body's orientation, scale and position."""
        return metrics.pa_mpjpe(self.pred, self.truth)

    def reference_error(self) -> torch.Tensor:
        return per_sample_joint_error(self._ref()[0], self._ref()[1])

    def reference_articulation_error(self) -> torch.Tensor:
        return metrics.pa_mpjpe(*self._ref())

    def _ref(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reference_pred is None or self.reference_truth is None:
            raise RuntimeError("this hardness strategy needs reference errors: set needs_reference = True on it")
        return self.reference_pred, self.reference_truth


class FeedbackPath(Strategy):
    """Computes the estimator's prediction on G's batch; returns None when the method has no feedback."""

    role: ClassVar[str] = "feedback"
    active: ClassVar[bool] = True  # False: the method has no feedback (the estimator is not run on G's batch)

    def __call__(self, ctx: "RunContext", body_pose: torch.Tensor, view: torch.Tensor,
                 rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, SceneBatch] | None:
        """(pred, truth, scene) with gradients to ``body_pose``/``view`` as the path allows; None for no feedback."""
        raise NotImplementedError


class Hardness(Strategy):
    """Turns the estimator's errors on G's batch into L_fb (minimised by G, weighted by ``w2``)."""

    role: ClassVar[str] = "hardness"
    needs_reference: ClassVar[bool] = False  # the GAN stage renders the same poses from source-like views too

    def loss(self, batch: FeedbackBatch, cfg: "RunConfig") -> tuple[torch.Tensor, dict[str, float]]:
        """(L_fb, numbers to log)."""
        raise NotImplementedError

    def view_regularizer(self, view_rotation: torch.Tensor, cfg: "RunConfig") -> torch.Tensor | None:
        """An extra term on G's viewpoints, added to L_adv at every GAN step (None: none)."""
        return None


class DatasetSampler(Strategy):
    """Builds the fine-tuning set: a dict with ``global_orient`` (N, 3; zero for G's upright bodies), ``body_pose``
    (N, 23, 3), ``viewpoint`` (N, 3; the camera's K), ``images`` uint8 (N, 3, H, W) at the loop's size, ``joints``
    (N, 24, 3) and ``rotations`` (N, 24, 3, 3). The dataset stage exports the same samples at the export size. It must
    be deterministic given ``gen``."""

    role: ClassVar[str] = "sampler"

    def sample(self, ctx: "RunContext", n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@dataclass
class Strategies:
    """The strategies of one run."""

    feedback: FeedbackPath
    hardness: Hardness
    sampler: DatasetSampler


def create_strategy(role: str, name: str, **options: Any) -> Strategy:
    """Build the registered strategy ``name``, checking that it plays ``role``."""
    from .errors import PluginError
    from .plugins import create, get_registry

    if role not in ROLES:
        raise PluginError(f"unknown strategy role '{role}'; expected one of {', '.join(ROLES)}.")
    reg = get_registry()
    if name in reg.plugins["strategy"]:
        factory = reg.plugins["strategy"][name].factory
        plays = getattr(factory, "role", None)
        if plays is not None and plays != role:
            same = ", ".join(strategy_names(role))
            raise PluginError(f"strategy '{name}' is a {plays} strategy, not a {role} one. {role} strategies: {same}.")
    built = create("strategy", name, **options)
    if built.role != role:
        raise PluginError(f"strategy '{name}' built a {built.role or 'role-less'} strategy, not a {role} one.")
    return built


def strategy_names(role: str) -> list[str]:
    from .plugins import get_registry

    reg = get_registry()
    return sorted(n for n, info in reg.plugins["strategy"].items() if getattr(info.factory, "role", None) == role)


def build_strategies(cfg: "RunConfig") -> Strategies:
    return Strategies(
        feedback=create_strategy("feedback", cfg.feedback),  # type: ignore[arg-type]
        hardness=create_strategy("hardness", cfg.hardness, **cfg.hardness_options),  # type: ignore[arg-type]
        sampler=create_strategy("sampler", cfg.sampler, **cfg.sampler_options),  # type: ignore[arg-type]
    )


def reference_views(ctx: "RunContext", body_pose: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimator's prediction and the truth for the same poses from source-like (chest-height) views, without
    gradient: the denominator of relative hardness (PoseAug's e(original pose))."""
    P = ctx.state.P
    with torch.no_grad():
        scene = ctx.scene(body_pose.detach(), source_viewpoints(len(body_pose), rng), rng)
        return P(scene.images).joints, scene.joints
