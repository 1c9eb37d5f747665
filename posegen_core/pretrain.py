"""Pre-training an estimator on the source domain (everyday poses from chest-height cameras), as the paper assumes
its estimator was; the result is cached so that the default run starts from a genuinely pre-trained model."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed, metrics
from .camera import Intrinsics
from .config import PretrainConfig
from .errors import TrainingError
from .progress import active_reporter, format_duration
from .interfaces import Estimator, EstimatorOutput, PoseSet, Renderer
from .scene import module_device, render_scene, sample_poses, source_viewpoints


def cache_dir() -> Path:
    """Where pre-trained models are cached: $POSEGEN_CACHE, else ~/.cache/posegen."""
    return Path(os.environ.get("POSEGEN_CACHE") or Path.home() / ".cache" / "posegen")


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: Steps timed (after one warm-up step) before the remaining pre-training time is announced.
ESTIMATE_AFTER_STEPS = 5

#: A pre-training estimated to take longer than this is announced as long, with the ways to avoid it.
LONG_PRETRAIN_S = 30 * 60


def time_estimate(step_s: float, steps_left: int, device: str) -> str:
    """The line announcing how long pre-training will take, from the measured seconds per step."""
    left = step_s * steps_left
    msg = f"pre-training: about {format_duration(left)} left ({step_s:.2f} s/step, {steps_left} steps to go on {device})"
    if left > LONG_PRETRAIN_S:
        msg += (". That is long: pass --estimator-checkpoint with a pre-trained model, lower pretrain.steps, "
                "or run on a GPU (--device cuda)")
    return msg


#: Weight of the rotation term next to the joint loss (pre-training and fine-tuning use the same objective).
ROTATION_WEIGHT = 0.1


def supervised_loss(estimator: Estimator, out: EstimatorOutput, joints: torch.Tensor, rotations: torch.Tensor,
                    threshold: float | None = None) -> torch.Tensor:
    """The estimator's training objective: its joint loss (eq. 13 with ``threshold``) plus, where it predicts
    rotations, their squared error against the ground truth."""
    loss = estimator.joint_loss(out, joints, threshold=threshold)
    if out.rotations is not None:
        loss = loss + ROTATION_WEIGHT * (out.rotations - rotations).pow(2).mean()
    return loss


def pretrain_estimator(
    estimator: Estimator,
    renderer: Renderer,
    body_model: nn.Module,
    poses: PoseSet,
    cfg: PretrainConfig,
    image_size: int,
    distance: float,
    seed: int,
    subject: object = "random",
    log: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``estimator`` on renders of ``poses`` from source viewpoints; returns the learning curve. Renders where
    the body model lives (the estimator and renderer must be there too); random draws stay on the CPU.

    ``say`` gets the time estimate after the first few steps; a progress bar joins the active display, if any. A
    non-finite loss raises TrainingError (nothing of a diverged model is returned to be cached)."""
    # each process of a distributed run draws its own batches (stream = rank; rank 0's is the single-process
    # stream) and gradients are averaged: N processes train on N times the batch. The validation set is shared.
    gen = distributed.stream_generator(seed, distributed.world().rank)
    val_gen = torch.Generator().manual_seed(seed + 7919)
    intr = Intrinsics.framing(image_size, distance)
    with torch.no_grad():
        n = cfg.val_samples
        go, bp = sample_poses(poses, n, val_gen)
        val = render_scene(renderer, body_model, intr, go, bp, source_viewpoints(n, val_gen), distance, subject, val_gen)
    opt = torch.optim.Adam(estimator.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / max(cfg.steps, 1)))
    )
    curve: list[dict[str, Any]] = []
    reporter = active_reporter()
    task = reporter.task("pre-train estimator", cfg.steps) if reporter is not None else None
    device = str(module_device(estimator))
    timer = 0.0
    for step in range(cfg.steps):
        if step == 1:  # the first step warms up (allocations, kernel selection): time the next ones
            timer = time.perf_counter()
        if step == 1 + ESTIMATE_AFTER_STEPS and say is not None:
            say(time_estimate((time.perf_counter() - timer) / ESTIMATE_AFTER_STEPS, cfg.steps - step, device))
        estimator.train()
        with torch.no_grad():
            go, bp = sample_poses(poses, cfg.batch_size, gen)
            k = source_viewpoints(cfg.batch_size, gen)
            batch = render_scene(renderer, body_model, intr, go, bp, k, distance, subject, gen)
        loss = supervised_loss(estimator, estimator(batch.images), batch.joints, batch.rotations)
        if not bool(torch.isfinite(loss)):
            raise TrainingError(
                f"pre-training diverged: the loss became NaN/inf at step {step + 1} (pretrain.lr = {cfg.lr:g}); "
                "nothing was cached. Lower pretrain.lr (e.g. --set pretrain.lr=1e-3) and run again."
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(estimator)
        distributed.average_buffers(estimator)
        opt.step()
        sched.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            estimator.eval()
            with torch.no_grad():
                pred = torch.cat([estimator(val.images[i : i + 64]).joints for i in range(0, len(val.images), 64)])
            row = {
                "stage": "pretrain", "step": step + 1, "loss": loss.item(),
                "val_mpjpe_mm": float(metrics.mpjpe(pred, val.joints).mean()) * 1000,
            }
            curve.append(row)
            if log is not None:
                log(row)
        if task is not None:
            reporter.update(task, step + 1, None)
    if task is not None:
        reporter.done(task)
    estimator.eval()
    return curve
