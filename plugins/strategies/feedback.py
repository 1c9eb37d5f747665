"""Feedback paths: how the estimator's error on G's batch is computed and reaches G."""

from __future__ import annotations

import torch

import posegen_core as pg
from posegen_core.scene import SceneBatch
from posegen_core.strategies import FeedbackPath


class RenderFeedback(FeedbackPath):
    """Through the pixels (the paper): G -> render -> estimator, differentiable end to end; falls back to ``pose``
    when the renderer is not differentiable."""

    def start(self, ctx) -> None:
        if not ctx.parts.renderer.differentiable:
            ctx.log("the renderer is not differentiable: feedback falls back to 'pose' (no gradients through pixels)")

    def __call__(self, ctx, body_pose, view, rng):
        if not ctx.parts.renderer.differentiable:
            return PoseFeedback()(ctx, body_pose, view, rng)
        scene = ctx.scene(body_pose, view, rng)
        return ctx.state.P(scene.images).joints, scene.joints, scene


class PoseFeedback(FeedbackPath):
    """The official code's variant: the render and the prediction carry no gradient; G's gradient comes only through
    the forward kinematics of its own pose and view (the ground truth X moves, the prediction stays)."""

    def __call__(self, ctx, body_pose, view, rng):
        with torch.no_grad():
            rendered = ctx.scene(body_pose.detach(), view.detach(), rng)
            pred = ctx.state.P(rendered.images).joints
        go = torch.zeros(len(body_pose), 3, dtype=body_pose.dtype, device=body_pose.device)
        body = ctx.parts.body_model(go, body_pose)
        cam, _ = pg.to_camera_frame(body.joints, body.rotations, view, ctx.cfg.camera_distance)
        truth = pg.root_relative(cam)
        scene = SceneBatch(rendered.images, rendered.alpha, truth, cam, view, rendered.rotations)
        return pred, truth, scene


class ViewFeedback(FeedbackPath):
    """Through the pixels to G's viewpoints only: the poses enter the render detached, so the estimator's error moves
    the camera K and never theta, which answers to D alone. Relative hardness (the error against the same pose from a
    source-like view) then measures the viewpoint's hardness, and G cannot raise it by leaving the pose manifold.
    Falls back to ``pose`` (with theta detached) when the renderer is not differentiable."""

    def start(self, ctx) -> None:
        if not ctx.parts.renderer.differentiable:
            ctx.log("the renderer is not differentiable: feedback 'view' goes through forward kinematics only")

    def __call__(self, ctx, body_pose, view, rng):
        if not ctx.parts.renderer.differentiable:
            return PoseFeedback()(ctx, body_pose.detach(), view, rng)
        scene = ctx.scene(body_pose.detach(), view, rng)
        return ctx.state.P(scene.images).joints, scene.joints, scene


class NoFeedback(FeedbackPath):
    """No feedback: G learns from D alone (the paper's A1/A2 ablations)."""

    active = False

    def __call__(self, ctx, body_pose, view, rng):
        return None
