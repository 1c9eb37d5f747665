"""The ``anerf`` renderer: posegen's camera-frame skeleton in, A-NeRF images out (differentiable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import posegen_core as pg

from . import conventions as conv
from .checkpoint import load_raycaster
from .config import ANeRFConfig, preset
from .raycaster import FastOptions, RayBatch, RayCaster

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


def _background(value: str | tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, str):
        if value not in BACKGROUNDS:
            raise pg.ConfigError(f"unknown background '{value}'; use one of {sorted(BACKGROUNDS)} or an (r, g, b) "
                                 "tuple in [0, 1].")
        return BACKGROUNDS[value]
    rgb = tuple(float(v) for v in value)
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise pg.ConfigError(f"background must be three values in [0, 1]; got {value!r}.")
    return rgb  # type: ignore[return-value]


class ANeRFRenderer(pg.Renderer):
    """A-NeRF (Su et al. 2021): an articulated NeRF driven by the skeleton; loads the official checkpoints.

    Args:
        checkpoint: an official A-NeRF ``.tar`` (surreal, mixamo ``*_ft``, surreal_single) or a ``posegen anerf fit``
            checkpoint. Without one, a randomly initialised network of ``config`` (useful for tests and training).
        config: preset name or ``ANeRFConfig``: the network to build without a checkpoint (default "surreal"), or the
            configuration a checkpoint must match (default: inferred from the checkpoint's shapes).
        overrides: ``ANeRFConfig`` fields, e.g. ``n_samples=32, n_importance=8`` for a cheaper sampler.
        background: "white" (the official SURREAL/Mixamo training background), "black" or an (r, g, b) tuple.
        chunk: rays per network batch (memory vs speed). Default: 64 on a CPU, where a chunk's activations
            (64 rays x 64 samples x 256 floats) stay in the cache and the MLP runs at ~80% of the machine's matmul
            throughput instead of ~55% at 1024 (benchmarks/anerf.py), and 1024 on a GPU.
        resolution_scale: render at this fraction of the requested size and upsample (the low-resolution mode for the
            feedback loop); 1 renders every pixel.
        retarget: re-pose the subject's own rest pose with the skeleton's rotations (A-NeRF's novel-pose path) instead
            of using the given joint positions.
        fast: inference accelerations: ``True`` = early ray termination at transmittance 1e-3 (every pixel changes by
            at most 1e-3); a dict such as ``{"early_stop": 1e-3, "skip_far": 1e-4}`` also skips samples where every
            cutoff weight is below 1e-4 (see ``FastOptions``). Off by default: the output equals the official one.
        amp: bfloat16 autocast for the networks on GPU (default: on when the renderer lives on a GPU).
        units_per_metre: metres -> A-NeRF units (default: posegen's skeleton matches A-NeRF's SURREAL rest pose).
        convention: "official" (integer pixel coordinates, infinite vertical bounding cylinder, the whole projected
            box rendered: what the official code draws) or "posegen" (pixel centres, capped cylinder, only rays that
            meet it). Default: "official" for an official checkpoint, the convention a posegen checkpoint was
            trained with, "posegen" without a checkpoint. See ``conventions.RAY_CONVENTIONS``.
        seed: seed of the initial weights when there is no checkpoint.
    """

    differentiable = True
    needs_checkpoint = True  # random weights render noise: runs refuse it without a checkpoint unless asked

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        config: str | ANeRFConfig | None = None,
        background: str | tuple[float, float, float] = "white",
        chunk: int | None = None,
        resolution_scale: float = 1.0,
        retarget: bool = False,
        fast: dict[str, float] | FastOptions | bool | None = None,
        amp: bool | None = None,
        units_per_metre: float | None = None,
        convention: str | None = None,
        seed: int = 0,
        **overrides: Any,
    ) -> None:
        super().__init__()
        base = preset(config) if isinstance(config, str) else config
        extra: dict[str, Any] = {}
        if checkpoint is not None:
            self.caster, extra = load_raycaster(checkpoint, base, overrides)
        else:
            base = base or preset("surreal")
            gen_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            try:
                self.caster = RayCaster(base.with_options(**overrides))
            finally:
                torch.random.set_rng_state(gen_state)
        self.background = _background(extra.get("background", background) if background == "white" else background)
        if chunk is not None and chunk <= 0:
            raise pg.ConfigError(f"chunk must be a positive number of rays; got {chunk}.")
        if not 0.0 < resolution_scale <= 1.0:
            raise pg.ConfigError(f"resolution_scale must be in (0, 1]; got {resolution_scale}.")
        self.chunk = None if chunk is None else int(chunk)
        self.resolution_scale = float(resolution_scale)
        self.retarget = bool(retarget)
        if fast is True:
            fast = FastOptions(early_stop=1e-3)
        elif not fast:
            fast = FastOptions()
        elif isinstance(fast, dict):
            fast = FastOptions(**fast)
        self.fast = fast
        self.amp = amp
        self.units_per_metre = float(units_per_metre or extra.get("units_per_metre", conv.UNITS_PER_METRE))
        if convention is None:
            convention = extra.get("convention", "official" if checkpoint is not None else "posegen")
        self.convention = conv.ray_convention(convention)
        rest = extra.get("rest_pose")
        self.register_buffer("rest_pose", rest if rest is not None else conv.rest_pose_units())

    @property
    def config(self) -> ANeRFConfig:
        return self.caster.config

    def rays_per_chunk(self, device: torch.device) -> int:
        """Rays per network batch: ``chunk`` when given, else 64 on a CPU (cache-sized) and 1024 on a GPU."""
        return self.chunk if self.chunk is not None else (64 if device.type == "cpu" else 1024)

    def _use_amp(self, device: torch.device) -> bool:
        return (device.type == "cuda") if self.amp is None else bool(self.amp and device.type == "cuda")

    def skeleton_rays(
        self, joints: torch.Tensor, rotations: torch.Tensor, intrinsics: pg.Intrinsics,
        subject: int | str | torch.Tensor | None = None, up: torch.Tensor | None = None,
    ) -> tuple[RayBatch, torch.Tensor]:
        """The rays to cast and their flat pixel index (R,) into (B * H * W), following ``self.convention``:
        official: every pixel of the projected cylinder's box, bounds from the infinite vertical cylinder, rays that
        miss it at the image's mean bounds; posegen: the rays of the box that hit the capped cylinder.
        ``up``: the world vertical in the camera frame ((3,) or (B, 3); default: the root's +y axis)."""
        dev, dtype = self.rest_pose.device, self.rest_pose.dtype
        joints, rotations = joints.to(dev, dtype), rotations.to(dev, dtype)
        units = joints * self.units_per_metre
        if self.retarget:
            units = conv.retarget(units, rotations, self.rest_pose)
        rot_t, offset = conv.world_to_joint(units, rotations)
        axis = conv.world_up(rotations, up)
        cyl = conv.bounding_cylinder(units, axis, self.config.cylinder_extend)
        official = self.convention.official_bounds
        box = conv.official_pixel_box if official else conv.cylinder_pixel_box
        b, h, w = joints.shape[0], intrinsics.height, intrinsics.width
        pix, img = [], []
        for i in range(b):
            r0, r1, c0, c1 = box(cyl, i, intrinsics, self.units_per_metre)
            if r1 <= r0 or c1 <= c0:
                continue
            rows = torch.arange(r0, r1, device=dev)[:, None].expand(-1, c1 - c0).flatten()
            cols = torch.arange(c0, c1, device=dev)[None].expand(r1 - r0, -1).flatten()
            pix.append(i * h * w + rows * w + cols)
            img.append(torch.full_like(rows, i))
        pix_t = torch.cat(pix) if pix else torch.zeros(0, dtype=torch.long, device=dev)
        img_t = torch.cat(img) if img else torch.zeros(0, dtype=torch.long, device=dev)
        local = pix_t % (h * w)
        dirs = conv.pixel_directions(local // w, local % w, intrinsics, self.convention.pixel_offset).to(dev, dtype)
        if official:
            near, far, hit = conv.infinite_cylinder_bounds(dirs, cyl["centre"][img_t], cyl["axis"][img_t],
                                                           cyl["radius"][img_t])
            near, far, hit = conv.fill_missed_bounds(near, far, hit, img_t, b)
        else:
            near, far, hit = conv.ray_cylinder_bounds(dirs, *(cyl[k][img_t] for k in ("centre", "axis", "radius",
                                                                                       "top", "bottom")))
        keep = hit.nonzero().squeeze(-1)
        frame = self._frames(subject, b, dev)
        rays = RayBatch(dirs[keep], near[keep], far[keep], img_t[keep], rot_t, offset, frame)
        return rays, pix_t[keep]

    def _frames(self, subject: int | str | torch.Tensor | None, b: int, dev: torch.device) -> torch.Tensor:
        """Frame-code index per image: ``subject`` as an int or (B,) tensor; None or -1 = the mean code."""
        if isinstance(subject, bool) or not isinstance(subject, (int, torch.Tensor)):
            return torch.full((b,), -1, dtype=torch.long, device=dev)  # other renderers' subject ids/names
        idx = torch.as_tensor(subject, device=dev).long().reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(b)
        elif idx.numel() != b:
            raise pg.ConfigError(f"subject must be one frame-code index or one per image ({b}); got {idx.numel()}.")
        n = self.config.n_framecodes
        if n and bool((idx >= n).any()):
            raise pg.ConfigError(f"frame code index out of range: the checkpoint has {n} frame codes (0..{n - 1}); "
                                 "use -1 for their mean.")
        return idx

    def render(
        self,
        joints: torch.Tensor,
        rotations: torch.Tensor,
        intrinsics: pg.Intrinsics,
        subject: int | str | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        up: torch.Tensor | None = None,
    ) -> pg.RenderOutput:
        """The renderer contract; ``up`` (optional, (3,) or (B, 3)) is the world vertical in the camera frame, the
        axis of the official bounding cylinder (default: the root's +y axis, posegen's upright body frame)."""
        target = intrinsics
        if self.resolution_scale < 1.0:
            intrinsics = intrinsics.scaled(self.resolution_scale)
        images, alpha = self.render_full(joints, rotations, intrinsics, subject, up=up)
        if intrinsics is not target:
            size = (target.height, target.width)
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
            alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
        out_dtype = joints.dtype if joints.is_floating_point() else torch.float32
        return pg.RenderOutput(images=images.clamp(0.0, 1.0).to(joints.device, out_dtype),
                               alpha=alpha.clamp(0.0, 1.0).to(joints.device, out_dtype))

    def render_full(
        self, joints: torch.Tensor, rotations: torch.Tensor, intrinsics: pg.Intrinsics,
        subject: int | str | torch.Tensor | None = None, up: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) composited on the background and alpha (B, 1, H, W), at exactly ``intrinsics``."""
        rays, pix = self.skeleton_rays(joints, rotations, intrinsics, subject, up=up)
        b, h, w = joints.shape[0], intrinsics.height, intrinsics.width
        dev, dtype = self.rest_pose.device, self.rest_pose.dtype
        amp = self._use_amp(dev)
        colours, accs = [], []
        chunk = self.rays_per_chunk(dev)
        for s in range(0, rays.dirs.shape[0], chunk):
            out = self.caster.render_rays(rays.take(slice(s, s + chunk)), fast=self.fast, amp=amp)
            colours.append(out["rgb"])
            accs.append(out["acc"])
        bg = torch.tensor(self.background, dtype=dtype, device=dev)
        flat_rgb = bg.expand(b * h * w, 3)
        flat_acc = torch.zeros(b * h * w, dtype=dtype, device=dev)
        if colours:
            rgb, acc = torch.cat(colours), torch.cat(accs).clamp_max(1.0)
            flat_rgb = flat_rgb.index_put((pix,), rgb + (1.0 - acc)[:, None] * bg)
            flat_acc = flat_acc.index_put((pix,), acc)
        images = flat_rgb.view(b, h, w, 3).permute(0, 3, 1, 2)
        return images, flat_acc.view(b, 1, h, w)

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write a checkpoint in the official key layout plus posegen's config (loads with ``checkpoint=path``)."""
        from .checkpoint import save_checkpoint

        save_checkpoint(self.caster, path, rest_pose=self.rest_pose, units_per_metre=self.units_per_metre,
                        background=self.background, convention=self.convention.name, **extra)
