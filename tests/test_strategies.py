"""The loop's strategy seam (posegen_register_strategies) and the built-in strategies: feedback paths (gradients to
G through the pixels, through forward kinematics only, none), hardness controls against hand computations, dataset
samplers, in-loop fine-tuning, and a separate source pose source."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

import posegen_core as pg
from posegen_core import plugins as plugin_system
from posegen_core.camera import viewpoint_from_angles, viewpoint_rotation
from posegen_core.losses import banded_ratio_loss, elevation_prior_loss, feedback_loss, linear_schedule
from posegen_core.scene import SceneBatch
from posegen_core.stages.build import build_parts
from posegen_core.strategies import FeedbackBatch
from posegen_plugins.strategies.samplers import select_by_band

TINY = dict(
    device="cpu", iters=2, feedback_start=1, batch_size=4, samples=8, finetune_steps=2, finetune_batch=4, eval_samples=8,
    image_size=32, checkpoint_every=1, log_every=1, report=False, export_images=False,
    pretrain=pg.PretrainConfig(steps=2, batch_size=4, eval_every=2, val_samples=8),
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _context(tmp_path, **over):
    """A run's context after its parts are built (pre-trained estimator, fresh G), without running any stage."""
    cfg = pg.RunConfig(out=str(tmp_path / "run"), **{**TINY, **over})
    run = pg.PoseGenRun(cfg)
    run.run_dir.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.parts = build_parts(cfg, run.run_dir, run.log)
    run._init_training()
    return run.ctx


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- feedback paths
def _fb_grads(ctx, detach_images: bool) -> dict[str, torch.Tensor]:
    """G's gradient from L_fb alone (render path), optionally with the images cut from the graph."""
    G, P = ctx.state.G, ctx.state.P
    G.train()
    P.eval()
    P.requires_grad_(False)
    body_pose, view = ctx.generate(4, torch.Generator().manual_seed(0))
    scene = ctx.scene(body_pose, view, torch.Generator().manual_seed(1))
    images = scene.images.detach() if detach_images else scene.images
    err = (P(images).joints - scene.joints).norm(dim=-1).mean(-1)
    G.zero_grad(set_to_none=True)
    feedback_loss(err, "ood", 1.0).backward()
    return {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}


def test_generator_gets_a_gradient_from_feedback_through_the_rendered_pixels(tmp_path):
    ctx = _context(tmp_path)
    assert ctx.parts.renderer.differentiable
    full = _fb_grads(ctx, detach_images=False)
    labels_only = _fb_grads(ctx, detach_images=True)
    # the part of G's gradient that came through the pixels (full minus the path through the ground truth only)
    through_pixels = sum(float((full[n] - labels_only.get(n, torch.zeros_like(full[n]))).abs().sum()) for n in full)
    assert through_pixels > 1e-6
    assert float(full["view_head.4.weight"].abs().sum()) > 0  # K moves with the feedback
    assert float(full["pose_head.weight"].abs().sum()) > 0  # and so does theta


def test_feedback_paths_render_pose_and_none(tmp_path):
    ctx = _context(tmp_path)
    body_pose, view = ctx.generate(4, torch.Generator().manual_seed(0))
    ctx.state.P.requires_grad_(False)
    pred, truth, scene = pg.create_strategy("feedback", "render")(ctx, body_pose, view, torch.Generator().manual_seed(1))
    assert pred.requires_grad and truth.requires_grad and scene.images.requires_grad
    pred, truth, scene = pg.create_strategy("feedback", "pose")(ctx, body_pose, view, torch.Generator().manual_seed(1))
    assert not pred.requires_grad and truth.requires_grad and not scene.images.requires_grad  # official: FK only
    # the pose path's truth is the rendered batch's ground truth, and its gradient reaches G's K and theta
    rendered = ctx.scene(body_pose.detach(), view.detach(), torch.Generator().manual_seed(1))
    torch.testing.assert_close(truth.detach(), rendered.joints, atol=1e-5, rtol=0)
    ctx.state.G.zero_grad(set_to_none=True)
    (1 - (pred - truth).norm(dim=-1).mean()).backward()
    assert float(ctx.state.G.view_head[-1].weight.grad.abs().sum()) > 0
    none = pg.create_strategy("feedback", "none")
    assert not none.active and none(ctx, body_pose, view, torch.Generator()) is None


def test_view_feedback_moves_the_viewpoints_and_never_the_poses(tmp_path):
    """``view``: the same render and prediction as ``render``, but L_fb's gradient reaches G's K head only."""
    ctx = _context(tmp_path)
    body_pose, view = ctx.generate(4, torch.Generator().manual_seed(0))
    ctx.state.P.requires_grad_(False)
    pred, truth, _ = pg.create_strategy("feedback", "view")(ctx, body_pose, view, torch.Generator().manual_seed(1))
    ref_pred, ref_truth, _ = pg.create_strategy("feedback", "render")(ctx, body_pose, view,
                                                                      torch.Generator().manual_seed(1))
    torch.testing.assert_close(pred.detach(), ref_pred.detach())
    torch.testing.assert_close(truth.detach(), ref_truth.detach())
    G = ctx.state.G
    G.zero_grad(set_to_none=True)
    feedback_loss((pred - truth).norm(dim=-1).mean(-1), "ood", 1.0).backward()
    assert float(G.view_head[-1].weight.grad.abs().sum()) > 0
    assert G.pose_head.weight.grad is None  # theta takes no gradient from the estimator


def test_without_feedback_nothing_trains_the_viewpoints(tmp_path):
    """feedback none, no spread term: G's K head (trained only by L_fb and the spread term) stays at its start; with
    pose feedback it moves, and the log records the estimator's error only then."""
    heads = {}
    for fb in ("none", "pose"):
        out = tmp_path / fb
        result = pg.run(pg.RunConfig(out=str(out), **{**TINY, "feedback": fb, "w_spread": 0.0, "iters": 3}))
        state = torch.load(out / "checkpoints" / "generator.pt", weights_only=True)["G"]
        heads[fb] = state["view_head.4.weight"]
        errors = [r["error_mm"] for r in _rows(out) if r["stage"] == "gan"]
        assert (errors == [None, None, None]) if fb == "none" else (errors[0] is None and errors[1] > 0)
        assert np.isfinite(result.summary["table"]["novel_views"]["mpjpe_after"])
    torch.manual_seed(TINY.get("seed", 0))
    fresh = _context(tmp_path / "fresh", w_spread=0.0).state.G.state_dict()["view_head.4.weight"]
    torch.testing.assert_close(heads["none"], fresh, atol=0, rtol=0)
    assert float((heads["pose"] - fresh).abs().max()) > 0


# ---------------------------------------------------------------------------------------------- in-loop fine-tuning
@pytest.mark.parametrize("mode", ["loop", "both"])
def test_finetune_in_the_loop_and_both(tmp_path, mode):
    out = tmp_path / mode
    pg.run(pg.RunConfig(out=str(out), **{**TINY, "finetune": mode, "iters": 3, "feedback_start": 1}))
    rows = _rows(out)
    gan = [r for r in rows if r["stage"] == "gan"]
    # P trains on G's batch from the first feedback iteration on (after G's step), not before
    assert ["loss_p" in r for r in gan] == [False, True, True]
    ft = [r for r in rows if r["stage"] == "finetune"]
    assert len(ft) == (TINY["finetune_steps"] if mode == "both" else 0)
    before = torch.load(out / "checkpoints" / "estimator_pretrained.pt", weights_only=True)["state_dict"]
    after = torch.load(out / "checkpoints" / "estimator_final.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


# ---------------------------------------------------------------------------------------------- source pose source
def test_a_separate_source_pose_source(tmp_path):
    over = dict(pose_source="default", pose_source_options={"motions": "squat,sit,bend,reach,wave"},
                source_pose_source="default", source_pose_source_options={"motions": "walk,run"})
    ctx = _context(tmp_path / "ctx", **over)
    src = {ctx.parts.source.train.take_names[i] for i in np.unique(ctx.parts.source.train.take)}
    gen = {ctx.parts.split.train.take_names[i] for i in np.unique(ctx.parts.split.train.take)}
    assert src and all(t.startswith(("walk", "run")) for t in src)
    assert gen and not any(t.startswith(("walk", "run")) for t in gen)
    # fine-tuning mixes in renders of the source poses: source batches come from the source split
    b = ctx.source_batch(3, torch.Generator().manual_seed(0))
    assert b.images.shape[0] == 3
    result = pg.run(pg.RunConfig(out=str(tmp_path / "run"), **{**TINY, **over}))
    assert set(result.summary["table"]) == {"source_views", "novel_views", "source_domain"}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "source_pose_source" in manifest["plugins"]


# ---------------------------------------------------------------------------------------------- hardness, by hand
def _batch(pred, truth, ref_pred=None, ref_truth=None, progress=0.0):
    n = len(pred)
    scene = SceneBatch(torch.zeros(n, 3, 2, 2), torch.zeros(n, 1, 2, 2), truth, truth, torch.zeros(n, 3),
                       torch.eye(3).expand(n, 24, 3, 3))
    return FeedbackBatch(pred, truth, scene, torch.eye(3).expand(n, 3, 3), progress, ref_pred, ref_truth)


def _offset(truth, metres):
    """A prediction off by ``metres`` at every joint (a translation: MPJPE = metres, PA-MPJPE = 0)."""
    return truth + torch.tensor([metres, 0.0, 0.0])


def test_banded_ratio_loss_by_hand():
    e = torch.tensor([0.3, 0.5, 0.1])
    ref = torch.tensor([0.1, 0.1, 0.1])
    # r = 3, 5, 1; beta 3, sigma 1: gaps 0, 2, -2 -> counted where |gap| > 1 -> (0 + 4 + 4) / 3
    assert float(banded_ratio_loss(e, ref, beta=3.0, sigma=1.0)) == pytest.approx(8 / 3)
    assert float(banded_ratio_loss(e, ref, beta=3.0, sigma=2.5)) == 0.0  # everything inside the band
    # the reference is a constant: the gradient is 2 (r - beta) / e_ref where counted
    e.requires_grad_(True)
    banded_ratio_loss(e, ref, 3.0, 1.0).backward()
    torch.testing.assert_close(e.grad, torch.tensor([0.0, 2 * 2 / 0.1 / 3, 2 * -2 / 0.1 / 3]))
    assert linear_schedule(3.0, 5.0, 0.5) == 4.0 and linear_schedule(3.0, 5.0, 2.0) == 5.0


def test_elevation_prior_loss_by_hand():
    # two cameras at elevation 0 against the full sphere: prior quantiles asin(-1/2) = -30 deg and +30 deg
    assert float(elevation_prior_loss(torch.zeros(2), math.pi / 2)) == pytest.approx((math.pi / 6) ** 2)
    # a batch at exactly the prior's quantiles costs nothing, in any order
    q = torch.asin(torch.tensor([-0.5, 0.5]) * math.sin(math.radians(60)))
    assert float(elevation_prior_loss(q.flip(0), math.radians(60))) == pytest.approx(0.0, abs=1e-12)


def test_paper_hardness_is_eq_8():
    truth = torch.randn(4, 24, 3, generator=torch.Generator().manual_seed(0))
    pred = _offset(truth, 0.2)
    cfg = pg.RunConfig(scenario="ood", c=1.0)
    loss, _ = pg.create_strategy("hardness", "paper").loss(_batch(pred, truth), cfg)
    assert float(loss) == pytest.approx(1.0 - 0.2, abs=1e-6)
    loss, _ = pg.create_strategy("hardness", "paper").loss(_batch(pred, truth), pg.RunConfig(scenario="ind"))
    assert float(loss) == pytest.approx(0.2, abs=1e-6)


def test_banded_hardness_relative_to_the_source_view_with_its_schedule():
    truth = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0))
    pred = torch.cat([_offset(truth[:1], 0.3), _offset(truth[1:], 0.9)])  # errors 0.3 and 0.9 m
    ref_truth = truth.clone()
    ref_pred = _offset(ref_truth, 0.1)  # the same poses from a source view: 0.1 m -> r = 3 and 9
    h = pg.create_strategy("hardness", "banded", beta_start=3.0, beta_end=5.0, sigma=2.0)
    assert h.needs_reference
    loss, logs = h.loss(_batch(pred, truth, ref_pred, ref_truth, progress=0.5), pg.RunConfig())
    # beta = 4 at half-way: gaps -1 (inside sigma 2) and 5 (outside) -> (0 + 25) / 2
    assert logs["hardness_beta"] == 4.0 and logs["hardness_ratio"] == pytest.approx(6.0, abs=1e-4)
    assert float(loss) == pytest.approx(12.5, abs=1e-3)
    # the articulation variant ignores a pure translation error (PA-MPJPE 0)
    h_pa = pg.create_strategy("hardness", "banded", error="pa", beta_start=3.0, beta_end=3.0, sigma=0.5)
    noisy = ref_truth + 0.01 * torch.randn(ref_truth.shape, generator=torch.Generator().manual_seed(1))
    loss_pa, logs_pa = h_pa.loss(_batch(pred, truth, noisy, ref_truth), pg.RunConfig())
    assert logs_pa["hardness_ratio"] == pytest.approx(0.0, abs=1e-3) and float(loss_pa) == pytest.approx(9.0, abs=1e-2)


def test_split_hardness_separates_articulation_and_viewpoint():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(1, 24, 3, generator=g)
    pred = _offset(truth, 0.5)  # all viewpoint-like error: MPJPE 0.5, PA 0 -> view error 0.5
    ref_truth = torch.randn(1, 24, 3, generator=g)
    ref_pred = _offset(ref_truth, 0.02)  # reference view error 0.02
    h = pg.create_strategy("hardness", "split", art_beta_start=3.0, art_beta_end=3.0, art_sigma=2.0, w_art=1.0,
                           view_beta_start=17.0, view_beta_end=17.0, view_sigma=5.0, w_view=0.1)
    loss, logs = h.loss(_batch(pred, truth, ref_pred, ref_truth), pg.RunConfig())
    # view ratio 0.5 / 0.02 = 25, gap 8 > 5 -> 0.1 * 64; articulation: PA 0 / PA_ref (~0, floored at 1 mm) = 0,
    # gap -3 outside sigma 2 -> 1 * 9
    assert logs["ratio_view"] == pytest.approx(25.0, rel=1e-3)
    assert float(loss) == pytest.approx(0.1 * 64 + 9.0, rel=1e-3)


def test_camera_prior_ties_viewpoints_to_the_prior():
    h = pg.create_strategy("hardness", "banded", camera_prior_deg=90.0, w_camera_prior=2.0)
    views = viewpoint_rotation(viewpoint_from_angles(torch.zeros(2), torch.tensor([0.0, 1.0])))
    assert float(h.view_regularizer(views, pg.RunConfig())) == pytest.approx(2.0 * (math.pi / 6) ** 2, rel=1e-4)
    assert pg.create_strategy("hardness", "banded").view_regularizer(views, pg.RunConfig()) is None
    with pytest.raises(pg.ConfigError, match="camera_prior_deg"):
        pg.create_strategy("hardness", "banded", camera_prior_deg=120.0)


# ---------------------------------------------------------------------------------------------- samplers
def test_select_by_band_by_hand():
    ratio = torch.tensor([0.5, 2.0, 40.0, 3.0, 10.0, 0.9])
    idx = select_by_band(ratio, 3, low=1.0, high=33.0, mix=0.0, gen=torch.Generator().manual_seed(0))
    assert sorted(idx.tolist()) == [1, 3, 4]  # the three inside (1, 33)
    idx = select_by_band(ratio, 4, low=1.0, high=33.0, mix=0.5, gen=torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 4 and len(set(idx.tolist()) & {1, 3, 4}) >= 2
    idx = select_by_band(ratio, 5, low=1.0, high=33.0, mix=0.0, gen=torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 5 and {1, 3, 4} <= set(idx.tolist())  # too few inside: filled from the rest


def test_samplers_error_weighted_filtered_and_target_like(tmp_path):
    ctx = _context(tmp_path)
    plain = pg.create_strategy("sampler", "generator").sample(ctx, 6, torch.Generator().manual_seed(0))
    assert plain["images"].dtype == torch.uint8 and plain["joints"].shape == (6, 24, 3)
    ew = pg.create_strategy("sampler", "error_weighted", candidates=4.0)
    a = ew.sample(ctx, 6, torch.Generator().manual_seed(0))
    b = ew.sample(ctx, 6, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic given the generator
    filt = pg.create_strategy("sampler", "filtered", candidates=2.0, low=0.0, high=1e9)
    f = filt.sample(ctx, 5, torch.Generator().manual_seed(0))
    assert len(f["images"]) == 5 and set(f) == set(plain)
    # the oracle: real poses (their own root tilt) from novel views; the camera-frame root rotation (what the SPIN
    # export writes as the global orientation) reproduces the rendered skeleton
    t = pg.create_strategy("sampler", "target_like").sample(ctx, 5, torch.Generator().manual_seed(0))
    assert set(t) == set(plain) and not torch.equal(t["global_orient"], torch.zeros_like(t["global_orient"]))
    root = pg.rotations.matrix_to_axis_angle(t["rotations"][:, 0].double())
    joints, _ = pg.forward_kinematics(root, t["body_pose"].double())
    torch.testing.assert_close(joints - joints[:, :1], t["joints"].double(), atol=1e-4, rtol=0)
    elev = torch.rad2deg(pg.camera.viewpoint_angles(t["viewpoint"])[0]).abs()
    assert (elev >= 35 - 1e-3).all() and (elev <= 80 + 1e-3).all()  # K is the camera's novel viewpoint


def test_a_strategy_of_the_wrong_role_or_name_is_refused():
    with pytest.raises(pg.PluginError, match="'render' is a feedback strategy, not a hardness one.*banded"):
        pg.create_strategy("hardness", "render")
    with pytest.raises(pg.PluginError, match="unknown strategy 'bandd'.*Did you mean 'banded'"):
        pg.create_strategy("hardness", "bandd")
    with pytest.raises(pg.PluginError, match="could not build strategy 'banded'"):
        pg.create_strategy("hardness", "banded", betta=3)


# ---------------------------------------------------------------------------------------------- the hook
class _HalfError(pg.Hardness):
    """A third-party hardness: L_fb = -e / 2 (records its calls)."""

    calls: list = []

    def loss(self, batch, cfg):
        _HalfError.calls.append(batch.progress)
        return -batch.error().mean() / 2, {"half": 1.0}


class _StrategyPlugin:
    @staticmethod
    @pg.hookimpl
    def posegen_register_strategies(register):
        register("half_error", _HalfError, description="half the error")


def test_hook_posegen_register_strategies(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_StrategyPlugin,)))
    assert "half_error" in pg.get_registry().names("strategy")
    assert pg.get_registry().plugins["strategy"]["half_error"].description == "half the error"
    _HalfError.calls = []
    pg.run(pg.RunConfig(out=str(tmp_path / "run"), hardness="half_error", **{**TINY, "iters": 3}))
    assert _HalfError.calls == [0.0, 1.0]  # feedback at iterations 1 and 2 of 3; the schedule's progress 0 -> 1
    rows = [r for r in _rows(tmp_path / "run") if r["stage"] == "gan"]
    assert [r.get("half") for r in rows] == [None, 1.0, 1.0]
    # an unknown strategy name fails before the run folder is written
    with pytest.raises(pg.PluginNotFoundError, match="unknown strategy 'nope'"):
        pg.run(pg.RunConfig(out=str(tmp_path / "run2"), sampler="nope", **TINY))
    assert not (tmp_path / "run2").exists()
    with pytest.raises(pg.PluginError, match="could not build strategy 'banded'"):
        pg.run(pg.RunConfig(out=str(tmp_path / "run3"), hardness="banded", hardness_options={"betta": 3}, **TINY))
    assert not (tmp_path / "run3").exists()


def test_orientation_error_is_the_angle_of_the_aligning_rotation():
    from posegen_core.rotations import rotation_about_axis
    from posegen_core.stages.evaluate import orientation_error_deg

    truth = torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([0.0, 0.5, 2.0])
    pred = truth @ rotation_about_axis("y", angles).transpose(1, 2) * 1.3 + 0.2  # rotated, scaled, moved
    torch.testing.assert_close(orientation_error_deg(pred, truth), torch.rad2deg(angles), atol=1e-3, rtol=0)
