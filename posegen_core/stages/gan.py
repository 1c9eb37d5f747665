"""Stage 1: G and D, with the estimator's feedback (paper eq. 8: L_G = w1 L_adv + w2 L_fb; eqs. 9-10 for D).

Each iteration: G draws a batch (theta, K); D scores theta; the feedback path (a strategy) renders the batch and asks
the estimator; the hardness strategy turns its errors into L_fb; G and D step; with ``finetune`` ``loop``/``both`` the
estimator also trains on the batch. The random stream, the models and D's history pool are checkpointed, so a resumed
run repeats the same draws.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ..camera import camera_directions, viewpoint_angles
from ..losses import generator_objective, lsgan_discriminator_loss, lsgan_generator_loss, spread_loss
from ..plugins import get_registry
from ..scene import sample_poses
from ..strategies import FeedbackBatch, reference_views
from .context import RunContext
from .finetune import finetune_loss, finetune_split


def train_gan(ctx: RunContext) -> None:
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
        body_pose, view, shape = ctx.generate_with_shape(cfg.batch_size, st.rng)
        # G's body shapes (generate_shape) reach every render of this batch: feedback, reference views, fine-tuning
        ctx.batch_subject = shape
        ctx.check_finite({"generator output": body_pose.detach()})
        adv = lsgan_generator_loss(st.D(body_pose))
        if cfg.w_spread > 0 and st.G.viewpoint:
            adv = adv + cfg.w_spread * spread_loss(camera_directions(view))
        if st.G.viewpoint:
            extra = strategies.hardness.view_regularizer(view, cfg)
            if extra is not None:
                adv = adv + extra
        fb = err = None
        scene = None
        fb_logs: dict[str, float] = {}
        start = cfg.feedback_begins
        feedback_now = st.step >= start and (st.step - start) % cfg.feedback_every == 0
        if feedback_now and strategies.feedback.active:
            st.P.eval()
            st.P.requires_grad_(False)
            out = strategies.feedback(ctx, body_pose, view, st.rng)
            if out is not None:
                pred, truth, scene = out
                batch = FeedbackBatch(pred, truth, scene, view, _progress(st.step, start, cfg.iters))
                if strategies.hardness.needs_reference:
                    batch.reference_pred, batch.reference_truth = reference_views(ctx, body_pose, st.rng)
                err = batch.error().mean()
                fb, fb_logs = strategies.hardness.loss(batch, cfg)
            st.P.requires_grad_(True)
        loss_g = generator_objective(adv, fb, cfg.w1, cfg.w2)
        # discriminator step (eq. 10) on real poses vs. a history pool of fakes
        st.D.requires_grad_(True)
        _, real = sample_poses(st.real, cfg.batch_size, st.rng, upright=False)
        real = real.to(ctx.device)
        fake = st.pool(body_pose, st.rng)
        loss_d = lsgan_discriminator_loss(st.D(real), st.D(fake))
        ctx.check_finite({"loss_g": loss_g, "loss_d": loss_d})
        st.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        nn.utils.clip_grad_norm_(st.G.parameters(), cfg.grad_clip)
        st.opt_g.step()
        st.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        nn.utils.clip_grad_norm_(st.D.parameters(), cfg.grad_clip)
        st.opt_d.step()
        # in-loop fine-tuning of the estimator on this batch (after G's backward, which went through P)
        loss_p = None
        if cfg.finetune in ("loop", "both") and st.step >= cfg.feedback_begins:
            with torch.no_grad():
                if scene is None:
                    scene = ctx.scene(body_pose.detach(), view.detach(), st.rng)
            n_gen, n_src = finetune_split(cfg)
            n_gen = min(n_gen, len(body_pose))
            loss_p = finetune_loss(ctx, scene.images[:n_gen].detach(), scene.joints[:n_gen].detach(),
                                   scene.rotations[:n_gen].detach(), n_src, st.rng)
            ctx.check_finite({"loss_p": loss_p})
            st.opt_p.zero_grad(set_to_none=True)
            loss_p.backward()
            st.opt_p.step()
        ctx.batch_subject = None
        st.step += 1
        n_last += cfg.batch_size
        if st.step % cfg.log_every == 0 or st.step == cfg.iters:
            elev, _ = viewpoint_angles(view.detach())
            row = {
                "stage": "gan", "step": st.step, "loss_g": loss_g.item(), "loss_d": loss_d.item(),
                "adv": adv.item(), "error_mm": None if err is None else err.item() * 1000,
                "mean_abs_elevation_deg": float(elev.abs().mean()) * 180 / math.pi,
                "samples_per_s": n_last / max(time.time() - t_last, 1e-9),
            }
            row.update(fb_logs)
            if loss_p is not None:
                row["loss_p"] = loss_p.item()
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


def _progress(step: int, start: int, iters: int) -> float:
    """0 at the first feedback iteration, 1 at the last GAN iteration."""
    return min(1.0, max(0.0, (step - start) / max(1, iters - 1 - start)))
