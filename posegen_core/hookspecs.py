"""Plugin hooks. Every hook name carries the ``posegen_`` prefix; plugins implement them with ``@posegen_core.hookimpl``.

Registration hooks receive a ``register`` callback::

    @posegen_core.hookimpl
    def posegen_register_estimators(register):
        register("mine", MyEstimator, description="ViT regressor")

The host validates each factory against the kind's interface, refuses duplicate names, and records which
distribution provided it. Lifecycle hooks observe a run; they must not change it.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "posegen"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Hookspecs:
    @hookspec
    def posegen_register_renderers(self, register: Any) -> None:
        """Register renderers: ``register(name, factory, description="")``.

        ``factory(**options)`` returns a ``posegen_core.Renderer``: camera-frame SMPL-24 skeleton + intrinsics ->
        images (B, 3, H, W) in [0, 1] and alpha (B, 1, H, W).
        """

    @hookspec
    def posegen_register_estimators(self, register: Any) -> None:
        """Register estimators: ``register(name, factory, description="")``.

        ``factory(checkpoint=None, **options)`` returns a ``posegen_core.Estimator``: images (B, 3, H, W) in [0, 1]
        -> ``EstimatorOutput`` with root-relative camera-frame joints (B, 24, 3) in metres.
        """

    @hookspec
    def posegen_register_priors(self, register: Any) -> None:
        """Register latent priors: ``register(name, factory, description="")``; ``factory()`` returns a
        ``posegen_core.Prior`` whose ``sample(n, dim, generator)`` gives (n, dim)."""

    @hookspec
    def posegen_register_discriminators(self, register: Any) -> None:
        """Register pose discriminators: ``register(name, factory, description="")``; ``factory(**options)`` returns a
        ``posegen_core.Discriminator`` mapping body_pose (B, 23, 3) to scores (B, heads)."""

    @hookspec
    def posegen_register_pose_sources(self, register: Any) -> None:
        """Register real-pose sources: ``register(name, factory, description="")``; ``factory(**options)`` returns a
        ``posegen_core.PoseSource`` whose ``load()`` gives a ``PoseSet`` (axis-angle, SMPL order)."""

    @hookspec
    def posegen_register_strategies(self, register: Any) -> None:
        """Register loop strategies: ``register(name, factory, description="")``; ``factory(**options)`` returns a
        ``posegen_core.strategies`` ``FeedbackPath`` (how the estimator's error reaches G: ``RunConfig.feedback``),
        ``Hardness`` (errors -> L_fb: ``RunConfig.hardness``) or ``DatasetSampler`` (the fine-tuning set:
        ``RunConfig.sampler``). Names are unique across the three roles."""

    @hookspec
    def posegen_register_commands(self, cli: Any) -> None:
        """Add click commands or groups to the ``posegen`` CLI: ``cli.add_command(...)`` or ``@cli.command()``."""

    @hookspec
    def posegen_run_start(self, config: Any, run_dir: Any) -> None:
        """Called once when ``posegen run`` starts, with the resolved ``RunConfig`` and the run folder."""

    @hookspec
    def posegen_step_end(self, step: int, metrics: dict) -> None:
        """Called after each logged training step of the feedback loop with that step's metrics."""

    @hookspec
    def posegen_run_end(self, result: Any) -> None:
        """Called once when a run finishes, with its ``RunResult`` (summary metrics and paths)."""
