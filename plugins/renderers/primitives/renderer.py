"""The ``primitives`` renderer: a posed skeleton -> images of a person made of shaded ellipsoids, differentiably.

Pipeline: skeleton -> 3D ellipsoids (body.py) -> screen ellipses with depth (projection.py) -> tile-culled soft
z-buffer splatting with an analytic backward (splat.py) -> composited over a background (backgrounds.py).
Gradients flow from pixels to joint positions and rotations (through ellipsoid placement and projection, which
autograd handles on small (B, K) tensors, and the splat, which has its own backward).
"""

from __future__ import annotations

from dataclasses import replace

import torch

import posegen_core as pg

from . import splat as sp
from .backgrounds import BACKGROUNDS, DEFAULT_COLOUR, make_background
from .body import NUM_PRIMITIVES, PRIMITIVE_SLOTS, build_ellipsoids
from .projection import screen_parameters
from .subjects import SUBJECTS, Subject, get_subject, resolve_subjects

#: Nearer parts are brighter: colour * exp(-DEPTH_FADE * (z - z_root)).
DEPTH_FADE = 0.4


class PrimitivesRenderer(pg.Renderer):
    """Fast differentiable CPU renderer: the body as ~40 shaded ellipsoids on the skeleton (the default)."""

    differentiable = True
    num_primitives = NUM_PRIMITIVES

    def __init__(
        self,
        subject: int | str = 0,
        background: str = "plain",
        background_color: tuple[float, float, float] = DEFAULT_COLOUR,
        tile: int = 8,
        tau: float = 0.025,
        seed: int = 0,
    ) -> None:
        """Args:
            subject: default appearance when ``render`` gets none: a built-in id/name, or 'random'.
            background: 'plain' (``background_color``), 'noise' (textured) or 'random' (a mix, per sample).
            tile: tile size in pixels for culling (8 suits 64-256 px images).
            tau: depth softness (metres) of the soft z-buffer.
            seed: seeds the renderer's own generator, used for random draws when ``render`` gets no generator.
        """
        super().__init__()
        if subject != "random":
            get_subject(subject)  # fail early on unknown names
        if background not in BACKGROUNDS:
            raise pg.ConfigError(f"unknown background '{background}'; expected one of {', '.join(BACKGROUNDS)}.")
        if len(background_color) != 3 or not all(0.0 <= float(v) <= 1.0 for v in background_color):
            raise pg.ConfigError(f"background_color must be 3 numbers in [0, 1]; got {background_color!r}.")
        if not (isinstance(tile, int) and 2 <= tile <= 64):
            raise pg.ConfigError(f"tile must be an integer number of pixels in [2, 64]; got {tile!r}.")
        if not tau > 0:
            raise pg.ConfigError(f"tau must be a positive depth softness in metres; got {tau!r}.")
        self.subject = subject
        self.background = background
        self.background_color = tuple(float(v) for v in background_color)
        self.settings = replace(sp.SplatSettings(), tile=tile, tau=float(tau))
        self.generator = torch.Generator().manual_seed(int(seed))

    @staticmethod
    def subjects() -> tuple[Subject, ...]:
        """The built-in subjects (select by name or by index)."""
        return SUBJECTS

    def render(
        self,
        joints: torch.Tensor,
        rotations: torch.Tensor,
        intrinsics: pg.Intrinsics,
        subject: int | str | torch.Tensor | Subject | None = None,
        generator: torch.Generator | None = None,
        background: str | torch.Tensor | None = None,
    ) -> pg.RenderOutput:
        """Images (B, 3, H, W) in [0, 1] and alpha (B, 1, H, W) of the camera-frame skeleton.

        ``subject``: None (the renderer's default), a built-in id or name, 'random', a Subject, or (B,) ids.
        ``background``: None (the renderer's setting), a kind name, an RGB (3,) tensor or (B, 3, H, W) images.
        """
        check_inputs(joints, rotations, intrinsics)
        gen = generator if generator is not None else self.generator
        b = joints.shape[0]
        h, w = intrinsics.height, intrinsics.width
        colours, thickness = resolve_subjects(subject, b, gen, self.subject)
        colours = colours.to(device=joints.device, dtype=joints.dtype)
        ell = build_ellipsoids(joints, rotations, thickness.to(device=joints.device, dtype=joints.dtype))
        fade = torch.exp(-DEPTH_FADE * (ell.centres[..., 2] - joints[:, :1, 2]))  # (B, K)
        prim_colours = (colours[:, PRIMITIVE_SLOTS.to(joints.device)] * fade[..., None]).clamp(0.0, 1.0)
        params, valid = screen_parameters(ell, prim_colours, intrinsics)
        fg, alpha = sp.splat(params, valid, b, h, w, self.settings)
        bg = make_background(self.background if background is None else background, b, h, w, gen,
                             self.background_color, joints.dtype).to(joints.device)
        images = alpha * fg + (1.0 - alpha) * bg
        return pg.RenderOutput(images=images.clamp(0.0, 1.0), alpha=alpha)


def check_inputs(joints: torch.Tensor, rotations: torch.Tensor, intrinsics: pg.Intrinsics) -> None:
    """(Shared by the skeleton-driven renderers.) Shapes, finiteness, rotation matrices, joints in front of the camera: fail with a message that says what to do."""
    pg.validation.check_tensor(joints, "joints", (None, pg.skeleton.NUM_JOINTS, 3),
                               hint="Pass camera-frame SMPL-24 joints in metres (see posegen_core.to_camera_frame).")
    pg.validation.check_tensor(rotations, "rotations", (joints.shape[0], pg.skeleton.NUM_JOINTS, 3, 3),
                               hint="Pass camera-frame global joint rotations (see posegen_core.to_camera_frame).")
    if not isinstance(intrinsics, pg.Intrinsics):
        raise pg.ShapeError(f"intrinsics must be a posegen_core.Intrinsics; got {type(intrinsics).__name__}.")
    if joints.dtype != rotations.dtype:
        raise pg.ShapeError(f"joints and rotations must share a dtype; got {joints.dtype} and {rotations.dtype}.")
    with torch.no_grad():
        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        err = (rotations.transpose(-1, -2) @ rotations - eye).abs().amax() if rotations.numel() else 0.0
        if float(err) > 1e-2:
            raise pg.ShapeError(
                f"rotations must be rotation matrices (R^T R = I); the largest deviation is {float(err):.3g}. "
                "Pass global joint rotations, e.g. from posegen_core.forward_kinematics, not axis-angle or scaled matrices."
            )
        zmin = float(joints[..., 2].min()) if joints.numel() else 1.0
        if zmin <= 0.1:
            raise pg.ShapeError(
                f"every joint must be in front of the camera (z > 0.1 m in the OpenCV camera frame); the nearest is at "
                f"z = {zmin:.3g} m. Place the skeleton with posegen_core.to_camera_frame(..., distance=4.0)."
            )
