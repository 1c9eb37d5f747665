"""The primitives renderer (default, CPU, differentiable): a person made of shaded ellipsoids on the skeleton."""

from __future__ import annotations

import posegen_core as pg

from .renderer import PrimitivesRenderer
from .subjects import SUBJECTS, Subject, get_subject, sample_subjects

__all__ = ["PrimitivesRenderer", "SUBJECTS", "Subject", "get_subject", "sample_subjects"]


@pg.hookimpl
def posegen_register_renderers(register):
    register(
        "primitives", PrimitivesRenderer,
        description="Default CPU renderer: ~40 shaded ellipsoids on the skeleton, differentiable, fast.",
    )
