"""A-NeRF model configurations: the three released ones and small ones for tests and CPU fits.

The numbers come from the official configs (reference/anerf_notes.md): SURREAL and Mixamo use coarse 64 + fine 16
samples with separate coarse/fine networks; ``surreal_single`` shares one network with 96 + 48 samples and no
positional encoding of the relative ray direction. Mixamo adds 16-D per-frame codes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import posegen_core as pg

NUM_JOINTS = 24


@dataclass(frozen=True)
class ANeRFConfig:
    """Everything that fixes the network's shapes and the sampler (the checkpoint-relevant part of A-NeRF's args)."""

    depth: int = 8  # density trunk layers
    width: int = 256  # trunk width
    skip: int = 4  # the input is concatenated in front of h after this layer
    view_width: int = 128  # hidden width of the colour head
    multires: int = 7  # frequencies 1..2^(multires-1) for the relative distance
    multires_views: int = 4  # frequencies for the relative ray direction (0: raw direction only)
    n_samples: int = 64  # coarse samples per ray
    n_importance: int = 16  # extra fine samples per ray (0: coarse only)
    single_net: bool = False  # coarse and fine share one network
    n_framecodes: int = 0  # per-frame appearance codes (0: none)
    framecode_dim: int = 16
    cutoff_dist: float = 0.5  # A-NeRF units (cutoff_mm 500 x ext_scale 0.001)
    tau: float = 20.0  # initial cutoff sharpness (annealed in training, stored in checkpoints)
    cylinder_extend: float = 0.25  # A-NeRF units added to the bounding-cylinder radius (extend_mm 250 x 0.001)

    @property
    def pts_dim(self) -> int:
        return NUM_JOINTS * (1 + 2 * self.multires) + NUM_JOINTS * 3

    @property
    def view_dim(self) -> int:
        return NUM_JOINTS * 3 * (1 + 2 * self.multires_views)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ANeRFConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise pg.ConfigError(f"unknown A-NeRF config keys {unknown}; known keys: {sorted(known)}.")
        return cls(**data)

    def with_options(self, **options: Any) -> "ANeRFConfig":
        return replace(self, **options) if options else self


PRESETS: dict[str, ANeRFConfig] = {
    # configs/surreal/surreal.txt
    "surreal": ANeRFConfig(),
    # configs/mixamo/mixamo.txt (the *_ft.tar releases): frame codes, one per training image (1000 in the layout)
    "mixamo": ANeRFConfig(n_framecodes=1000),
    # configs/surreal/surreal_single.txt
    "surreal_single": ANeRFConfig(n_samples=96, n_importance=48, single_net=True, multires_views=0),
    # small networks for CPU fits and tests (same encodings, fewer and narrower layers)
    # the CPU fit demo: 4x64 trunk (no skip), 4 distance frequencies, one shared network with 24 + 8 samples
    "small": ANeRFConfig(depth=4, width=64, skip=3, view_width=32, multires=4, multires_views=2, n_samples=24,
                         n_importance=8, single_net=True),
    "tiny": ANeRFConfig(depth=2, width=16, skip=1, view_width=8, multires=2, multires_views=1, n_samples=6,
                        n_importance=4),
}


def preset(name: str, **overrides: Any) -> ANeRFConfig:
    """A named configuration with optional field overrides."""
    if name not in PRESETS:
        raise pg.ConfigError(f"unknown A-NeRF preset '{name}'; choose one of {sorted(PRESETS)}.")
    return PRESETS[name].with_options(**overrides)
