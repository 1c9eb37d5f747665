"""The A-NeRF renderer plugin: ``pg.create_renderer("anerf", checkpoint=PATH)`` and ``posegen anerf fit``.

Modules: ``config`` (network/sampler settings, presets), ``encoding`` (skeleton-relative encoding with cutoff),
``network`` (the MLP), ``sampling`` / ``volume`` / ``raycaster`` (rays, coarse + fine marching, eq. 12),
``conventions`` (metres/OpenCV <-> A-NeRF units/OpenGL), ``checkpoint`` (official .tar layout), ``renderer``
(the posegen Renderer), ``dataset`` / ``fit`` / ``cli`` (training on a new subject). Heavy work happens only when a
renderer is built or a command runs.
"""

from __future__ import annotations

import posegen_core as pg


def _factory() -> type:
    from .renderer import ANeRFRenderer

    return ANeRFRenderer


@pg.hookimpl
def posegen_register_renderers(register):
    register("anerf", _factory(), description="A-NeRF articulated NeRF (official checkpoints; differentiable)")


@pg.hookimpl
def posegen_register_commands(cli):
    from .cli import anerf

    cli.add_command(anerf)
