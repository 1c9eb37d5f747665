"""Draw projected skeletons onto images and save image grids as PNG (how a person looks at renders and results).

Images are (B, 3, H, W) float tensors in [0, 1] (the renderer contract); joints are (B, 24, 2) pixel coordinates
(``posegen_core.project``; pixel centres at +0.5). Left bones are drawn blue, right bones red, the spine yellow, so
a flipped estimate is visible at a glance.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from . import skeleton
from .errors import ShapeError
from .io import atomic_write_bytes
from .validation import check_tensor

LEFT_COLOUR = (40, 110, 255)
RIGHT_COLOUR = (255, 60, 40)
CENTRE_COLOUR = (255, 220, 40)
SECOND_COLOUR = (60, 230, 90)  # a second skeleton (e.g. an estimator's prediction) in one colour


def bone_colour(joint: int) -> tuple[int, int, int]:
    """RGB of the bone from ``joint`` to its parent: by the side of the body it belongs to."""
    if skeleton.is_left(joint):
        return LEFT_COLOUR
    if skeleton.is_right(joint):
        return RIGHT_COLOUR
    return CENTRE_COLOUR


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    images = check_tensor(images, "images", (None, 3, None, None), finite=False,
                          hint="Images are (B, 3, H, W), RGB, float in [0, 1].")
    arr = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def draw_skeleton(image: "PIL.Image.Image", joints_2d: torch.Tensor | np.ndarray, scale: float = 1.0,  # noqa: F821
                  width: int | None = None, colour: tuple[int, int, int] | None = None) -> None:
    """Draw a (24, 2) pixel skeleton onto a PIL image in place; ``scale`` maps joint pixels to image pixels.

    Bones are coloured by side unless ``colour`` is given (then every bone has it and joints are not marked).
    """
    from PIL import ImageDraw

    pts = np.asarray(joints_2d.detach().cpu() if isinstance(joints_2d, torch.Tensor) else joints_2d, dtype=float)
    if pts.shape != (skeleton.NUM_JOINTS, 2):
        raise ShapeError(f"joints_2d must have shape (24, 2) (pixel x, y per SMPL joint); got {pts.shape}.")
    pts = pts * scale - 0.5  # continuous pixel coordinates -> PIL's pixel-centre indices
    draw = ImageDraw.Draw(image)
    lw = width or max(1, round(min(image.size) / 80))
    for j, p in enumerate(skeleton.PARENTS):
        if p < 0 or not (np.isfinite(pts[j]).all() and np.isfinite(pts[p]).all()):
            continue
        draw.line([tuple(pts[p]), tuple(pts[j])], fill=colour or bone_colour(j), width=lw)
    if colour is not None:
        return
    r = lw * 0.9 + 0.5
    for j in range(skeleton.NUM_JOINTS):
        if np.isfinite(pts[j]).all():
            x, y = pts[j]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=(0, 0, 0))


def make_grid(
    images: torch.Tensor,
    joints_2d: torch.Tensor | None = None,
    ncol: int | None = None,
    scale: int = 1,
    padding: int = 2,
    pad_value: int = 255,
    second_joints_2d: torch.Tensor | None = None,
) -> "PIL.Image.Image":  # noqa: F821
    """Tile (B, 3, H, W) images into one PIL image, ``ncol`` per row, each upscaled ``scale`` times (nearest);
    with ``joints_2d`` (B, 24, 2) the skeletons are drawn on top at the upscaled resolution, and
    ``second_joints_2d`` (e.g. a prediction) over them in SECOND_COLOUR."""
    from PIL import Image

    arr = to_uint8(images)
    b, h, w, _ = arr.shape
    if b == 0:
        raise ShapeError("make_grid needs at least one image.")
    if joints_2d is not None:
        joints_2d = check_tensor(joints_2d, "joints_2d", (b, skeleton.NUM_JOINTS, 2), finite=False)
    if second_joints_2d is not None:
        second_joints_2d = check_tensor(second_joints_2d, "second_joints_2d", (b, skeleton.NUM_JOINTS, 2),
                                        finite=False)
    if not (isinstance(scale, int) and scale >= 1):
        raise ShapeError(f"scale must be a positive integer; got {scale!r}.")
    ncol = ncol or int(np.ceil(np.sqrt(b)))
    nrow = int(np.ceil(b / ncol))
    th, tw = h * scale, w * scale
    canvas = Image.new("RGB", (ncol * tw + (ncol + 1) * padding, nrow * th + (nrow + 1) * padding),
                       (pad_value,) * 3)
    for i in range(b):
        tile = Image.fromarray(arr[i])
        if scale != 1:
            tile = tile.resize((tw, th), Image.NEAREST)
        if joints_2d is not None:
            draw_skeleton(tile, joints_2d[i], scale=scale)
        if second_joints_2d is not None:
            draw_skeleton(tile, second_joints_2d[i], scale=scale, colour=SECOND_COLOUR,
                          width=max(1, round(min(tile.size) / 120)))
        r, c = divmod(i, ncol)
        canvas.paste(tile, (padding + c * (tw + padding), padding + r * (th + padding)))
    return canvas


def save_png(image: "PIL.Image.Image", path: str | Path) -> Path:  # noqa: F821
    """Write a PIL image as PNG atomically (readers never see half a file)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(buf.getvalue(), path)
    return Path(path)


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    joints_2d: torch.Tensor | None = None,
    ncol: int | None = None,
    scale: int = 1,
    padding: int = 2,
    second_joints_2d: torch.Tensor | None = None,
) -> Path:
    """``make_grid`` then ``save_png``: the one call the render command and the loop's report use."""
    grid = make_grid(images, joints_2d, ncol=ncol, scale=scale, padding=padding, second_joints_2d=second_joints_2d)
    return save_png(grid, path)
