"""Shape and value checks with messages that name the expected shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import ShapeError


def check_tensor(
    x: object,
    name: str,
    shape: Sequence[int | None],
    *,
    finite: bool = True,
    hint: str = "",
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the given shape (``None`` = any size) and, optionally, finite.

    Returns ``x`` so the check can be used inline. The error message names the expected shape, e.g. ``(B, 23, 3)``.
    """
    expected = "(" + ", ".join("B" if i == 0 and s is None else ("*" if s is None else str(s)) for i, s in enumerate(shape)) + ")"
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape {expected}; got {type(x).__name__}.")
    ok = x.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        msg = f"{name} must have shape {expected}; got {tuple(x.shape)}."
        if hint:
            msg += " " + hint
        raise ShapeError(msg)
    if not x.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}.")
    if finite and not bool(torch.isfinite(x).all()):
        raise ShapeError(f"{name} contains NaN or infinite values; check the poses or cameras that produced it.")
    return x


def check_images(images: object, name: str = "images") -> torch.Tensor:
    """Images follow the contract: (B, 3, H, W), float, values in [0, 1]."""
    images = check_tensor(images, name, (None, 3, None, None), finite=False,
                          hint="Images are (B, 3, H, W), RGB, float in [0, 1].")
    if images.numel() == 0:
        return images
    lo_t, hi_t = torch.aminmax(images)  # one pass; NaN and inf show up in the extremes
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ShapeError(f"{name} contains NaN or infinite values; check the poses or cameras that produced it.")
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ShapeError(
            f"{name} must hold values in [0, 1]; got range [{lo:.3g}, {hi:.3g}]. "
            "Divide 8-bit images by 255 and do not normalise them: each estimator normalises its own input."
        )
    return images


def check_renderer_shape(renderer: object, generate_shape: bool) -> None:
    """Refuse ``generate_shape`` for a renderer that takes no per-sample body shape (``Renderer.shape_dim`` 0)."""
    if not generate_shape:
        return
    from .errors import ConfigError
    from .plugins import get_registry

    obj = get_registry().get("renderer", renderer).factory if isinstance(renderer, str) else renderer
    if int(getattr(obj, "shape_dim", 0)) <= 0:
        name = renderer if isinstance(renderer, str) else type(renderer).__name__
        raise ConfigError(
            f"generate_shape needs a renderer that takes per-sample body shape (Renderer.shape_dim > 0); the {name} "
            "renderer takes none. Use a renderer with body shapes (e.g. --renderer anny) or set generate_shape = false."
        )


def check_renderer_weights(renderer: object, checkpoint: object, random_weights: bool) -> None:
    """Refuse a renderer that needs trained weights (``Renderer.needs_checkpoint``) when none are given: its images
    would be noise, and hours of pre-training and feedback on them would be wasted. ``random_weights`` overrides."""
    if not isinstance(renderer, str) or checkpoint or random_weights:
        return
    from .errors import ConfigError
    from .plugins import get_registry

    factory = get_registry().get("renderer", renderer).factory
    if getattr(factory, "needs_checkpoint", False):
        raise ConfigError(
            f"the {renderer} renderer needs a trained checkpoint (--renderer-checkpoint PATH); without one its images "
            "are noise from random weights. To run it with random weights anyway (tests, timing), pass "
            "--random-renderer-weights (renderer_random_weights = true)."
        )
