"""Coarse + fine ray marching through the skeleton-relative field (official ``RayCaster.render_rays``).

All positions are in A-NeRF units in the camera frame with the ray origin at the camera centre (0), so a sample at
depth z along direction d has joint-local coordinates ``p_j = z (G_j^T d) - G_j^T J_j``: the per-joint ray direction
is computed once per ray and each sample costs one multiply-add per coordinate (no 4x4 transforms per sample).

Work that cannot change the image is skipped exactly: only rays that meet the bounding cylinder are cast, a
``single_net`` model re-uses its coarse outputs in the fine pass, and the relative-ray-direction term of the colour
layer is computed once per ray and joint instead of once per sample. Two optional inference shortcuts (off by default,
see ``FastOptions``): early ray termination (error bounded by its threshold) and skipping samples beyond every
joint's cutoff (exact for models whose density vanishes there, as in a trained A-NeRF; measured, not guaranteed).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .config import ANeRFConfig
from .encoding import DirectionEncoder, PointEncoder
from .network import ANeRFNetwork
from .sampling import coarse_depths, fine_pdf, importance_depths
from .volume import activate, composite, sample_spacing


@dataclass(frozen=True)
class FastOptions:
    """Inference shortcuts. ``early_stop``: stop marching a ray once its transmittance is below this (the colour and
    alpha change by at most this much). ``skip_far``: treat samples whose every cutoff weight is below this as empty
    (exact only if the trained density is zero where the skeleton encoding vanishes; A-NeRF's cutoff is designed for
    that). ``segment``: samples marched per early-stop step."""

    early_stop: float | None = None
    skip_far: float | None = None
    segment: int = 16


@dataclass
class RayBatch:
    """Rays of several images: camera-frame directions (R, 3), bounds (R,), the image of each ray (R,) and, per
    image, the world-to-joint rotations (B, 24, 3, 3), offsets (B, 24, 3) and frame-code indices (B,)."""

    dirs: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor
    image: torch.Tensor
    rot_t: torch.Tensor
    offset: torch.Tensor
    frame: torch.Tensor

    def take(self, sl: slice) -> "RayBatch":
        return RayBatch(self.dirs[sl], self.near[sl], self.far[sl], self.image[sl], self.rot_t, self.offset, self.frame)


class RayCaster(nn.Module):
    """Coarse and fine A-NeRF networks with their encoders; renders ray batches."""

    def __init__(self, config: ANeRFConfig) -> None:
        super().__init__()
        self.config = config
        self.network_fn = ANeRFNetwork(config)
        self.network_fine = None if config.single_net or config.n_importance == 0 else ANeRFNetwork(config)
        self.embed = PointEncoder(config.multires, config.cutoff_dist, config.tau)
        self.embeddirs = DirectionEncoder(config.multires_views, config.cutoff_dist, config.tau)

    @property
    def fine(self) -> ANeRFNetwork:
        return self.network_fine if self.network_fine is not None else self.network_fn

    # ------------------------------------------------------------------------------------------------ evaluation
    def _evaluate(
        self, net: ANeRFNetwork, rays: RayBatch, local_dirs: torch.Tensor, dir_proj: torch.Tensor, z: torch.Tensor,
        far_dist: float | None, amp: bool,
    ) -> torch.Tensor:
        """Raw (rgb logits, sigma) (n, s, 4) at depths ``z`` (n, s); samples beyond ``far_dist`` of every joint are
        left at zero (empty) without running the network. ``dir_proj`` is ``net.direction_projection`` per ray."""
        n, s = z.shape
        local = z[..., None, None] * local_dirs[:, None] - rays.offset[rays.image][:, None]  # (n, s, 24, 3)
        dist = local.norm(dim=-1)  # (n, s, 24)
        view_proj = torch.bmm(self.embeddirs.weights(dist), dir_proj)  # (n, s, view_width): cutoff-weighted sum
        local, view_proj, flat_dist = local.flatten(0, 1), view_proj.flatten(0, 1), dist.flatten(0, 1)
        frame = rays.frame[rays.image][:, None].expand(n, s).flatten() if net.framecodes is not None else None
        flat = None
        if far_dist is not None:
            keep = dist.min(-1).values.flatten() < far_dist
            if not bool(keep.all()):
                flat = keep.nonzero().squeeze(-1)
                local, view_proj, flat_dist = local[flat], view_proj[flat], flat_dist[flat]
                frame = frame[flat] if frame is not None else None
        pts_in, _ = self.embed(local, flat_dist)
        code = net.code_for(frame) if frame is not None else None
        ctx = torch.autocast(device_type=z.device.type, dtype=torch.bfloat16) if amp else nullcontext()
        with ctx:
            sigma, feature = net.density_features(pts_in)
            rgb = net.colour(feature, view_proj, code)
        raw = torch.cat([rgb, sigma], -1).to(z.dtype)
        if flat is None:
            return raw.view(n, s, 4)
        out = torch.zeros(n * s, 4, dtype=raw.dtype, device=raw.device)
        return out.index_put((flat,), raw).view(n, s, 4)

    def _march(
        self, net: ANeRFNetwork, rays: RayBatch, local_dirs: torch.Tensor, dir_proj: torch.Tensor, z: torch.Tensor,
        fast: FastOptions, far_dist: float | None, amp: bool,
    ) -> torch.Tensor:
        """Raw outputs along every ray; with ``early_stop`` marches segment by segment and stops opaque rays."""
        if fast.early_stop is None or torch.is_grad_enabled():
            return self._evaluate(net, rays, local_dirs, dir_proj, z, far_dist, amp)
        n, s = z.shape
        raw = torch.zeros(n, s, 4, dtype=z.dtype, device=z.device)
        delta = sample_spacing(z, rays.dirs)
        trans = torch.ones(n, dtype=z.dtype, device=z.device)
        for s0 in range(0, s, fast.segment):
            s1 = min(s, s0 + fast.segment)
            idx = (trans > fast.early_stop).nonzero().squeeze(-1)
            if idx.numel() == 0:
                break
            sub = RayBatch(rays.dirs[idx], rays.near[idx], rays.far[idx], rays.image[idx], rays.rot_t, rays.offset,
                           rays.frame)
            seg = self._evaluate(net, sub, local_dirs[idx], dir_proj[idx], z[idx, s0:s1], far_dist, amp)
            raw[idx, s0:s1] = seg
            _, alpha = activate(seg, delta[idx, s0:s1])
            trans[idx] = trans[idx] * torch.prod(1.0 - alpha + 1e-10, -1)
        return raw

    # ------------------------------------------------------------------------------------------------ rendering
    def render_rays(
        self, rays: RayBatch, *, perturb: bool = False, raw_noise_std: float = 0.0, detach_samples: bool = False,
        generator: torch.Generator | None = None, fast: FastOptions = FastOptions(), amp: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Render one chunk: returns ``rgb`` (R, 3) and ``acc`` (R,) of the fine pass (and ``rgb0``/``acc0`` of the
        coarse pass when there is one). Background is not added here."""
        c = self.config
        local_dirs = (rays.rot_t[rays.image] @ rays.dirs[:, None, :, None]).squeeze(-1)  # (R, 24, 3)
        dir_code = self.embeddirs.per_ray(local_dirs)
        proj_fn = self.network_fn.direction_projection(dir_code)
        proj_fine = proj_fn if self.network_fine is None else self.network_fine.direction_projection(dir_code)
        far_dist = self.embed.negligible_beyond(fast.skip_far) if fast.skip_far is not None else None

        def noise(shape: torch.Size) -> torch.Tensor | None:
            if raw_noise_std <= 0:
                return None
            dev = "cpu" if generator is None else generator.device
            return (torch.randn(shape, generator=generator, dtype=rays.dirs.dtype, device=dev) * raw_noise_std
                    ).to(rays.dirs.device)

        z = coarse_depths(rays.near, rays.far, c.n_samples, perturb, generator)
        raw = self._march(self.network_fn, rays, local_dirs, proj_fn, z, fast, far_dist, amp)
        rgb, alpha = activate(raw, sample_spacing(z, rays.dirs), noise(raw.shape[:2]))
        colour, acc, weights = composite(rgb, alpha)
        if c.n_importance == 0:
            return {"rgb": colour, "acc": acc}
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        pdf = fine_pdf(weights, single_net=self.network_fine is None)
        z_new = importance_depths(mids, pdf, c.n_importance, deterministic=not perturb, generator=generator)
        if detach_samples:
            z_new = z_new.detach()
        if self.network_fine is None:  # one shared network: the coarse samples' outputs are already known
            raw_new = self._march(self.network_fn, rays, local_dirs, proj_fn, z_new, FastOptions(
                skip_far=fast.skip_far), far_dist, amp)
            z_all, order = torch.sort(torch.cat([z, z_new], -1), -1)
            raw_all = torch.cat([raw, raw_new], 1).gather(1, order[..., None].expand(-1, -1, 4))
        else:
            z_all, _ = torch.sort(torch.cat([z, z_new], -1), -1)
            raw_all = self._march(self.network_fine, rays, local_dirs, proj_fine, z_all, fast, far_dist, amp)
        rgb_f, alpha_f = activate(raw_all, sample_spacing(z_all, rays.dirs), noise(raw_all.shape[:2]))
        colour_f, acc_f, _ = composite(rgb_f, alpha_f)
        return {"rgb": colour_f, "acc": acc_f, "rgb0": colour, "acc0": acc}
