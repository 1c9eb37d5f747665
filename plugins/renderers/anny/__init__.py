"""The ``anny`` renderer: realistic, varied people (the anny body model) as differentiable surface splats on the CPU.

Optional: it needs ``pip install 'posegen[anny]'``. Without it posegen works as before and building this renderer
says how to install it. anny itself is imported only when the renderer is built.
"""

from __future__ import annotations

import posegen_core as pg

from .renderer import AnnyRenderer
from .subjects import PHENOTYPE_LABELS, PHENOTYPE_RANGES, Subjects, sample_subjects

__all__ = ["AnnyRenderer", "PHENOTYPE_LABELS", "PHENOTYPE_RANGES", "Subjects", "sample_subjects"]


@pg.hookimpl
def posegen_register_renderers(register):
    register(
        "anny", AnnyRenderer,
        description="Realistic varied people (anny body model; needs posegen[anny]): ~500 shaded surface splats, "
                    "CPU, differentiable.",
    )
