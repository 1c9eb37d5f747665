"""``generate_shape``: G generates body shape too (the paper's stated limitation: one rendered subject).

The gradient from the feedback loss reaches G's shape through the anny render; a run with it records each sample's
shape in the export; renderers without body shapes refuse it. Anny tests skip without ``pip install 'posegen[anny]'``.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import posegen_core as pg
from posegen_core.cli import cli
from posegen_core.generator import PoseGenerator
from posegen_core.losses import per_sample_joint_error
from posegen_core.scene import render_scene

needs_anny = pytest.mark.skipif(importlib.util.find_spec("anny") is None,
                                reason="the anny renderer needs pip install 'posegen[anny]'")

TINY = ["--device", "cpu", "--iters", "2", "--samples", "8", "--finetune-steps", "2", "--batch-size", "4",
        "--image-size", "32", "--set", "feedback_start=1", "--set", "finetune_batch=4", "--set", "eval_samples=8",
        "--set", "report=false", "--set", "pretrain.steps=2", "--set", "pretrain.batch_size=4",
        "--set", "pretrain.eval_every=2", "--set", "pretrain.val_samples=8"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """A fresh cache for the pre-trained models; anny's body cache stays where it is (building it takes minutes)."""
    from posegen_plugins.renderers.anny.asset import anny_cache_dir

    monkeypatch.setenv("POSEGEN_ANNY_CACHE", str(anny_cache_dir()))
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_without_generate_shape_the_generator_is_unchanged() -> None:
    """shape_dim 0 (the default) adds no parameters and draws no extra random numbers: old runs load and repeat."""
    torch.manual_seed(0)
    plain = PoseGenerator(16)
    torch.manual_seed(0)
    shaped = PoseGenerator(16, shape_dim=6)
    assert not any(k.startswith("shape_head") for k in plain.state_dict())
    for k, v in plain.state_dict().items():
        assert torch.equal(v, shaped.state_dict()[k]), k
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    plain.eval(), shaped.eval()
    assert plain(z).shape is None
    s = shaped(z).shape
    s = s.detach()
    assert s.shape == (5, 6) and float(s.min()) > 0 and float(s.max()) < 1 and float(s.std(0).min()) > 0.01
    with pytest.raises(pg.ConfigError, match="shape_dim"):
        PoseGenerator(16, shape_dim=-1)


@needs_anny
def test_feedback_gradient_reaches_generated_shape_through_anny() -> None:
    """The estimator's error on the anny render of G's batch (the feedback loss) moves G's shape head."""
    renderer = pg.create_renderer("anny")
    assert renderer.shape_dim == 6
    torch.manual_seed(0)
    G = PoseGenerator(32, shape_dim=renderer.shape_dim)
    with pytest.warns(UserWarning, match="random weights"):  # a stand-in for a trained estimator (weights set below)
        P = pg.create_estimator("simple").eval()
    # a fresh estimator's output layer is zero (its prediction ignores the image); a trained one's is not
    torch.nn.init.normal_(P.joints_out.weight, std=0.01, generator=torch.Generator().manual_seed(2))
    out = G(torch.randn(4, 32, generator=torch.Generator().manual_seed(0)))
    out.shape.retain_grad()
    intr = pg.Intrinsics.framing(32, 4.0)
    scene = render_scene(renderer, pg.SkeletonBody(), intr, torch.zeros(4, 3), out.body_pose, out.view_rotation, 4.0,
                         out.shape, torch.Generator().manual_seed(1))
    loss = -per_sample_joint_error(P(scene.images).joints, scene.joints).mean()  # the paper's ood L_fb = c - e
    loss.backward()
    assert float(out.shape.grad.abs().min(1).values.max()) > 0  # every sample's shape gets a gradient ...
    assert float(out.shape.grad.abs().sum(1).min()) > 1e-8
    assert float(G.shape_head[-1].weight.grad.abs().sum()) > 1e-8  # ... and it reaches G's weights
    # the shape changes the body: another shape, another image
    other = render_scene(renderer, pg.SkeletonBody(), intr, torch.zeros(4, 3), out.body_pose.detach(),
                         out.view_rotation.detach(), 4.0, 1 - out.shape.detach(), torch.Generator().manual_seed(1))
    assert float((other.images - scene.images.detach()).abs().max()) > 0.1
    with pytest.raises(pg.ShapeError, match=r"\(4, 6\) float tensor"):
        renderer(scene.camera_joints, scene.rotations, intr, subject=torch.rand(4, 5))


@needs_anny
def test_run_with_generate_shape_exports_the_phenotype(tmp_path) -> None:
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", "--renderer", "anny", "--out", str(run), *TINY,
                                   "--set", "generate_shape=true"])
    assert res.exit_code == 0, res.output
    ann = np.load(run / "dataset" / "annotations.npz")
    phen = ann["phenotype"]
    assert phen.shape == (8, 6) and phen.dtype == np.float32
    assert phen.min() > 0 and phen.max() < 1 and phen.std(0).min() > 1e-3  # each sample its own body
    # the export command re-draws the same samples from the trained G, shapes included
    again = tmp_path / "again"
    res = CliRunner().invoke(cli, ["export", str(run), "--out", str(again), "--size", "32", "--no-images"])
    assert res.exit_code == 0, res.output
    assert np.allclose(np.load(again / "annotations.npz")["phenotype"], phen, atol=1e-5)
    assert json.loads((run / "config.json").read_text())["generate_shape"] is True


def test_generate_shape_is_refused_for_renderers_without_body_shapes(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "run"), *TINY, "--set", "generate_shape=true"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "generate_shape needs a renderer that takes per-sample body shape" in res.output
    assert "primitives renderer takes none" in res.output
    assert not (tmp_path / "run").exists()
