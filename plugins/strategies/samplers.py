"""Dataset samplers: what the estimator is fine-tuned on."""

from __future__ import annotations

import math

import torch

from posegen_core.errors import ConfigError
from posegen_core.losses import per_sample_joint_error
from posegen_core.metrics import pa_mpjpe
from posegen_core.scene import novel_viewpoints, sample_poses, source_viewpoints
from posegen_core.strategies import DatasetSampler

CHUNK = 256


def _collect(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _rendered(scene, global_orient: torch.Tensor, body_pose: torch.Tensor, viewpoint: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "global_orient": global_orient.cpu(), "body_pose": body_pose.cpu(), "viewpoint": viewpoint.cpu(),
        "images": (scene.images.clamp(0, 1) * 255).round().to(torch.uint8).cpu(),
        "joints": scene.joints.cpu(), "rotations": scene.rotations.cpu(),
    }


class GeneratorSampler(DatasetSampler):
    """``n`` samples (theta, K) from the trained G, rendered (the paper). They are the run's generated source
    (``RunContext.generated_source``: fixed by the run seed), so ``posegen export RUN`` re-exports the same samples."""

    def sample(self, ctx, n, gen):
        return ctx.generated_source().in_memory(n, ctx.parts.intrinsics)


def _errors(ctx, data: dict[str, torch.Tensor], kind: str = "mpjpe") -> torch.Tensor:
    """The current estimator's per-sample error (metres) on rendered samples, as fine-tuning will see them."""
    P = ctx.state.P
    P.eval()
    errs = []
    with torch.no_grad():
        for i in range(0, len(data["images"]), CHUNK):
            pred = P(data["images"][i : i + CHUNK].to(ctx.device).float() / 255.0).joints.cpu()
            truth = data["joints"][i : i + CHUNK]
            errs.append(pa_mpjpe(pred, truth) if kind == "pa" else per_sample_joint_error(pred, truth))
    return torch.cat(errs)


def _reference_errors(ctx, body_pose: torch.Tensor, gen: torch.Generator, kind: str = "mpjpe",
                      phenotype: torch.Tensor | None = None) -> torch.Tensor:
    """The same poses (and body shapes, when G generated them) seen from source-like (chest-height) views: PoseAug's
    e(original pose)."""
    P = ctx.state.P
    errs = []
    with torch.no_grad():
        for i in range(0, len(body_pose), CHUNK):
            bp = body_pose[i : i + CHUNK].to(ctx.device)
            shape = None if phenotype is None else phenotype[i : i + CHUNK].to(ctx.device)
            scene = ctx.scene(bp, source_viewpoints(len(bp), gen), gen, subject=shape)
            pred, truth = P(scene.images).joints.cpu(), scene.joints.cpu()
            errs.append(pa_mpjpe(pred, truth) if kind == "pa" else per_sample_joint_error(pred, truth))
    return torch.cat(errs)


def _check_candidates(candidates: float) -> None:
    if candidates < 1:
        raise ConfigError(f"candidates must be >= 1 (generated samples per kept one); got {candidates}.")


class ErrorWeightedSampler(DatasetSampler):
    """G's samples resampled by the estimator's error: ``candidates`` x n drawn, n kept without replacement with
    probability proportional to error^``power``. Applied to a generator trained without feedback it tells whether
    the estimator's error alone (not the generator's search) makes data that pays."""

    def __init__(self, candidates: float = 3.0, power: float = 1.0) -> None:
        _check_candidates(candidates)
        self.candidates, self.power = float(candidates), float(power)

    def sample(self, ctx, n, gen):
        pool = GeneratorSampler().sample(ctx, max(n, math.ceil(self.candidates * n)), gen)
        err = _errors(ctx, pool)
        idx = torch.multinomial(err.clamp_min(1e-6) ** self.power, n, replacement=False, generator=gen)
        ctx.log(f"error-weighted sampler: kept {n} of {len(err)}; mean error {err.mean() * 1000:.1f} -> "
                f"{err[idx].mean() * 1000:.1f} mm")
        return {k: v[idx] for k, v in pool.items()}


class PlausibleSampler(DatasetSampler):
    """G's samples whose articulation lies closest to a real pose: ``candidates`` x n drawn, the n nearest to a real
    pose of D's pose source kept (root-mean-square distance of the upright, root-relative skeletons). It asks whether
    G's least realistic poses are what costs the fine-tuned estimator its articulation (PA-MPJPE)."""

    def __init__(self, candidates: float = 3.0) -> None:
        _check_candidates(candidates)
        self.candidates = float(candidates)

    def sample(self, ctx, n, gen):
        pool = GeneratorSampler().sample(ctx, max(n, math.ceil(self.candidates * n)), gen)
        dist = nearest_real_distance(ctx, pool["body_pose"], ctx.parts.split.train.body_pose)
        idx = torch.argsort(dist, stable=True)[:n]
        ctx.log(f"plausible sampler: kept {n} of {len(dist)}; mean distance to the nearest real pose "
                f"{dist.mean() * 1000:.1f} -> {dist[idx].mean() * 1000:.1f} mm")
        return {k: v[idx] for k, v in pool.items()}


def nearest_real_distance(ctx, body_pose: torch.Tensor, real_body_pose: torch.Tensor) -> torch.Tensor:
    """Per sample (N,), metres: the root-mean-square joint distance from the upright, root-relative skeleton of each
    pose to the nearest one of ``real_body_pose``."""
    def skeletons(bp: torch.Tensor) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, len(bp), CHUNK):
                b = bp[i : i + CHUNK].to(ctx.device)
                j = ctx.parts.body_model(torch.zeros(len(b), 3, dtype=b.dtype, device=b.device), b).joints
                out.append((j - j[:, :1]).flatten(1).cpu())
        return torch.cat(out)

    real = skeletons(real_body_pose)
    gen = skeletons(body_pose)
    joints = gen.shape[1] // 3
    exact = "donot_use_mm_for_euclid_dist"  # the matrix-product shortcut loses 0.2 mm to cancellation
    return torch.cat([torch.cdist(gen[i : i + CHUNK], real, compute_mode=exact).min(1).values
                      for i in range(0, len(gen), CHUNK)]) / math.sqrt(joints)


class FilteredSampler(DatasetSampler):
    """AdaptPose's filter: keep G's samples whose relative hardness r = e / e(same pose, source-like view) lies in
    (``low``, ``high``); a fraction ``mix`` of the set is drawn from the unfiltered candidates instead (mixing easy
    and hard). ``candidates`` x n samples are drawn; when too few pass, the rest are filled from the others."""

    def __init__(self, candidates: float = 2.0, low: float = 1.0, high: float = 33.0, mix: float = 0.0,
                 error: str = "mpjpe") -> None:
        _check_candidates(candidates)
        if not 0 <= low < high:
            raise ConfigError(f"filtered: need 0 <= low < high; got low={low}, high={high}.")
        if not 0 <= mix <= 1:
            raise ConfigError(f"filtered: mix must be in [0, 1]; got {mix}.")
        if error not in ("mpjpe", "pa"):
            raise ConfigError(f"filtered: error must be 'mpjpe' or 'pa'; got '{error}'.")
        self.candidates, self.low, self.high, self.mix, self.error = float(candidates), low, high, float(mix), error

    def sample(self, ctx, n, gen):
        pool = GeneratorSampler().sample(ctx, max(n, math.ceil(self.candidates * n)), gen)
        ratio = _errors(ctx, pool, self.error) / _reference_errors(ctx, pool["body_pose"], gen, self.error,
                                                         pool.get("phenotype")).clamp_min(1e-3)
        idx = select_by_band(ratio, n, self.low, self.high, self.mix, gen)
        inside = ((ratio > self.low) & (ratio < self.high)).float().mean()
        ctx.log(f"filtered sampler: {inside * 100:.0f}% of {len(ratio)} candidates inside ({self.low}, {self.high}); "
                f"kept {n}, mean ratio {ratio.mean():.2f} -> {ratio[idx].mean():.2f}")
        return {k: v[idx] for k, v in pool.items()}


def select_by_band(ratio: torch.Tensor, n: int, low: float, high: float, mix: float,
                   gen: torch.Generator) -> torch.Tensor:
    """Indices of n samples: n - round(mix * n) from those with low < ratio < high (in a random order), the rest
    (and any shortfall) from the remaining ones, at random."""
    order = torch.randperm(len(ratio), generator=gen)
    inside = (ratio[order] > low) & (ratio[order] < high)
    n_hard = min(int(inside.sum()), n - round(mix * n))
    hard = order[inside][:n_hard]
    rest = order[~torch.isin(order, hard)][: n - n_hard]
    return torch.cat([hard, rest])


class TargetLikeSampler(DatasetSampler):
    """The oracle (the paper's "FT" rows): real poses of D's pose source, with their own root tilt, seen from novel
    viewpoints (|elevation| in [``min_elevation_deg``, ``max_elevation_deg``], any azimuth). ``viewpoint`` holds
    the camera viewpoint K and ``global_orient`` the pose's own root orientation."""

    def __init__(self, min_elevation_deg: float = 35.0, max_elevation_deg: float = 80.0) -> None:
        if not 0 <= min_elevation_deg <= max_elevation_deg <= 90:
            raise ConfigError("target_like: need 0 <= min_elevation_deg <= max_elevation_deg <= 90; got "
                              f"{min_elevation_deg}, {max_elevation_deg}.")
        self.lo, self.hi = float(min_elevation_deg), float(max_elevation_deg)

    def sample(self, ctx, n, gen):
        out = []
        with torch.no_grad():
            for start in range(0, n, CHUNK):
                m = min(CHUNK, n - start)
                go, bp = sample_poses(ctx.parts.split.train, m, gen)
                k = novel_viewpoints(m, gen, self.lo, self.hi)
                scene = ctx.scene(bp, k, gen, go)
                out.append(_rendered(scene, go, bp, k))
        return _collect(out)
