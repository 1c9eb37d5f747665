"""Backgrounds behind the body: plain, textured noise (domain randomisation), or a random mix per sample.

Every random draw comes from the generator passed in, so the same seed gives the same images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import posegen_core as pg

BACKGROUNDS: tuple[str, ...] = ("plain", "noise", "random")
DEFAULT_COLOUR = (0.42, 0.45, 0.48)


def _smooth_noise(b: int, h: int, w: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """(b, 3, h, w) value noise: a coarse random grid, bilinearly upsampled."""
    grid = torch.rand(b, 3, cells, cells, generator=generator)
    return F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)


def noise_background(b: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Textured backgrounds: a random base colour with coarse blotches, finer texture and pixel grain."""
    base = torch.rand(b, 3, 1, 1, generator=generator) * 0.8 + 0.1
    amp = torch.rand(b, 3, 1, 1, generator=generator) * 0.35 + 0.1
    coarse = _smooth_noise(b, h, w, 4, generator) - 0.5
    fine = _smooth_noise(b, h, w, max(4, min(h, w) // 4), generator) - 0.5
    grain = torch.rand(b, 1, h, w, generator=generator) - 0.5
    return (base + amp * (coarse + 0.5 * fine) + 0.06 * grain).clamp(0.0, 1.0)


def gradient_background(b: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """A linear blend between two random colours along a random direction (floor/sky-like)."""
    c0 = torch.rand(b, 3, 1, 1, generator=generator)
    c1 = torch.rand(b, 3, 1, 1, generator=generator)
    angle = torch.rand(b, 1, 1, 1, generator=generator) * 2 * torch.pi
    ys = torch.linspace(-1, 1, h).view(1, 1, h, 1)
    xs = torch.linspace(-1, 1, w).view(1, 1, 1, w)
    t = ((torch.cos(angle) * xs + torch.sin(angle) * ys) * 0.5 + 0.5).clamp(0, 1)
    return c0 + (c1 - c0) * t


def make_background(
    kind: str | torch.Tensor, b: int, h: int, w: int, generator: torch.Generator,
    colour: tuple[float, float, float] = DEFAULT_COLOUR, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(b, 3, h, w) background: a kind name, an RGB (3,) tensor, or a (b or 1, 3, h, w) image tensor."""
    if isinstance(kind, torch.Tensor):
        if kind.shape == (3,):
            return kind.to(dtype).view(1, 3, 1, 1).expand(b, 3, h, w)
        if kind.dim() == 4 and kind.shape[1:] == (3, h, w) and kind.shape[0] in (1, b):
            return kind.to(dtype).expand(b, 3, h, w)
        raise pg.ShapeError(
            f"a background tensor must be an RGB colour (3,) or images (B, 3, {h}, {w}); got {tuple(kind.shape)}."
        )
    if kind == "plain":
        return torch.tensor(colour, dtype=dtype).view(1, 3, 1, 1).expand(b, 3, h, w)
    if kind == "noise":
        return noise_background(b, h, w, generator).to(dtype)
    if kind == "random":
        choice = torch.randint(0, 3, (b, 1, 1, 1), generator=generator)
        plain = torch.rand(b, 3, 1, 1, generator=generator).expand(b, 3, h, w)
        out = torch.where(choice == 0, plain, noise_background(b, h, w, generator))
        return torch.where(choice == 2, gradient_background(b, h, w, generator), out).to(dtype)
    raise pg.ConfigError(
        f"unknown background '{kind}'; expected one of {', '.join(BACKGROUNDS)}, an RGB tensor or an image tensor."
    )
