"""Stage 1: G and D, with the estimator's feedback (paper eq. 8: L_G = w1 L_adv + w2 L_fb; eqs. 9-10 for D).

Each iteration: G draws a batch (theta, K); D scores theta; the feedback path (a strategy) renders the batch and asks
the estimator; the hardness strategy turns its errors into L_fb; G and D step; with ``finetune`` ``loop``/``both`` the
estimator also trains on the batch. The random stream, the models and D's history pool are checkpointed, so a resumed
run repeats the same draws.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from .. import distributed
from ..camera import camera_directions, viewpoint_angles
from ..losses import generator_objective, lsgan_discriminator_loss, lsgan_generator_loss, spread_loss
from ..plugins import get_registry
from ..scene import SceneBatch, sample_poses
from ..strategies import FeedbackBatch, reference_views
from .context import RunContext
from .finetune import estimator_step, finetune_loss, finetune_split


@dataclass
class _Stream:
    """One random stream's share of the batch (``batch_size`` samples) and what the iteration made of it."""

    gen: torch.Generator
    body_pose: torch.Tensor
    view: torch.Tensor
    shape: torch.Tensor | None
    scene: SceneBatch | None = None


def train_gan(ctx: RunContext) -> None:
    """The GAN iterations. Each of this process's random streams draws ``batch_size`` samples; every loss is the mean
    of the per-stream losses and gradients are averaged over the processes (posegen_core.distributed), so a run gives
    the same models at every world size that divides its number of streams."""
    cfg, st, strategies = ctx.cfg, ctx.state, ctx.strategies
    strategies.feedback.start(ctx)
    strategies.hardness.start(ctx)
    task = ctx.reporter.task("GAN + feedback", cfg.iters, st.step)
    t_last, n_last = time.time(), 0
    while st.step < cfg.iters:
        st.G.train()
        st.D.train()
        # generator step (eq. 8)
        st.D.requires_grad_(False)
        # each stream's share through G on its own (G's BatchNorm normalises per share, as on separate processes)
        shares = distributed.shards_from_same_buffers(
            st.G, [lambda g=g: _Stream(g, *ctx.generate_with_shape(cfg.batch_size, g)) for g in st.rngs])
        distributed.average_buffers(st.G)
        advs, fbs, errs, logs = [], [], [], []
        start = cfg.feedback_begins
        feedback_now = st.step >= start and (st.step - start) % cfg.feedback_every == 0
        for sh in shares:
            # G's body shapes (generate_shape) reach every render of this batch: feedback, reference views, fine-tuning
            ctx.batch_subject = sh.shape
            ctx.check_finite({"generator output": sh.body_pose.detach()})
            adv = lsgan_generator_loss(st.D(sh.body_pose))
            if cfg.w_spread > 0 and st.G.viewpoint:
                adv = adv + cfg.w_spread * spread_loss(camera_directions(sh.view))
            if st.G.viewpoint:
                extra = strategies.hardness.view_regularizer(sh.view, cfg)
                if extra is not None:
                    adv = adv + extra
            advs.append(adv)
            if feedback_now and strategies.feedback.active:
                st.P.eval()
                st.P.requires_grad_(False)
                out = strategies.feedback(ctx, sh.body_pose, sh.view, sh.gen)
                if out is not None:
                    pred, truth, sh.scene = out
                    batch = FeedbackBatch(pred, truth, sh.scene, sh.view, _progress(st.step, start, cfg.iters))
                    if strategies.hardness.needs_reference:
                        batch.reference_pred, batch.reference_truth = reference_views(ctx, sh.body_pose, sh.gen)
                    errs.append(batch.error().mean())
                    fb_one, fb_logs = strategies.hardness.loss(batch, cfg)
                    fbs.append(fb_one)
                    logs.append(fb_logs)
                st.P.requires_grad_(True)
        adv = distributed.mean(advs)
        fb = distributed.mean(fbs) if fbs else None
        err = distributed.mean(errs) if errs else None
        loss_g = generator_objective(adv, fb, cfg.w1, cfg.w2)
        # discriminator step (eq. 10) on real poses vs. a history pool of fakes (one pool for the whole batch, on
        # rank 0, drawn from stream 0)
        st.D.requires_grad_(True)
        reals = [sample_poses(st.real, cfg.batch_size, sh.gen, upright=False)[1].to(ctx.device) for sh in shares]
        body_pose = torch.cat([sh.body_pose for sh in shares]) if len(shares) > 1 else shares[0].body_pose
        fakes = distributed.on_main_then_share(body_pose.detach(), lambda everything: st.pool(everything, st.rng))
        loss_d = distributed.mean([lsgan_discriminator_loss(st.D(real), st.D(fake))
                                   for real, fake in zip(reals, fakes.split(cfg.batch_size))])
        ctx.check_finite({"loss_g": loss_g, "loss_d": loss_d})
        st.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        distributed.average_gradients(st.G)
        nn.utils.clip_grad_norm_(st.G.parameters(), cfg.grad_clip)
        st.opt_g.step()
        st.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        distributed.average_gradients(st.D)
        nn.utils.clip_grad_norm_(st.D.parameters(), cfg.grad_clip)
        st.opt_d.step()
        # in-loop fine-tuning of the estimator on this batch (after G's backward, which went through P)
        loss_p = None
        if cfg.finetune in ("loop", "both") and st.step >= cfg.feedback_begins:
            loss_p = estimator_step(ctx, [lambda sh=sh: _finetune_on(ctx, sh) for sh in shares])
        ctx.batch_subject = None
        st.step += 1
        n_last += cfg.batch_size * st.streams
        if st.step % cfg.log_every == 0 or st.step == cfg.iters:
            views = torch.cat([sh.view for sh in shares]).detach()
            elev, _ = viewpoint_angles(views)
            row = {
                "stage": "gan", "step": st.step, "loss_g": loss_g.item(), "loss_d": loss_d.item(),
                "adv": adv.item(), "error_mm": None if err is None else err.item() * 1000,
                "mean_abs_elevation_deg": float(elev.abs().mean()) * 180 / math.pi,
            }
            for k in logs[0] if logs else ():  # the hardness strategy's numbers, averaged over the streams
                row[k] = sum(float(one[k]) for one in logs) / len(logs)
            if loss_p is not None:
                row["loss_p"] = loss_p.item()
            row = distributed.mean_over_ranks(row)  # every rank's numbers, then the samples of all of them per second
            row["samples_per_s"] = n_last / max(time.time() - t_last, 1e-9)
            t_last, n_last = time.time(), 0
            ctx.metric(row)
            get_registry().manager.hook.posegen_step_end(step=st.step, metrics=row)
            ctx.reporter.update(task, st.step, row)
        else:
            ctx.reporter.update(task, st.step, None)
        if st.step == cfg.iters:
            st.stage, st.step = "dataset", 0
            ctx.save_state()
            break
        if st.step % cfg.checkpoint_every == 0:
            ctx.save_state()
    ctx.reporter.done(task)


def _finetune_on(ctx: RunContext, sh: _Stream) -> torch.Tensor:
    """The estimator's in-loop loss on one stream's share of the batch (its feedback render, or a fresh one)."""
    ctx.batch_subject = sh.shape
    with torch.no_grad():
        scene = sh.scene if sh.scene is not None else ctx.scene(sh.body_pose.detach(), sh.view.detach(), sh.gen)
    n_gen, n_src = finetune_split(ctx.cfg)
    n_gen = min(n_gen, len(sh.body_pose))
    return finetune_loss(ctx, scene.images[:n_gen].detach(), scene.joints[:n_gen].detach(),
                         scene.rotations[:n_gen].detach(), n_src, sh.gen)


def _progress(step: int, start: int, iters: int) -> float:
    """0 at the first feedback iteration, 1 at the last GAN iteration."""
    return min(1.0, max(0.0, (step - start) / max(1, iters - 1 - start)))
