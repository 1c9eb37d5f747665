"""The same code on a CUDA GPU: renderers and estimators agree with the CPU, and `posegen run` works end to end there.

Skipped on machines without a GPU (CI has none); run them where one is: ``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import posegen_core as pg
from test_anerf import fabricate, posed_skeleton

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")

TINY = dict(
    iters=4, feedback_start=2, batch_size=8, samples=16, finetune_steps=3, finetune_batch=4, eval_samples=16,
    image_size=32, checkpoint_every=2, log_every=1,
    pretrain=pg.PretrainConfig(steps=2, batch_size=4, eval_every=2, val_samples=8),
)


@pytest.fixture(autouse=True)
def exact_float32(monkeypatch, tmp_path_factory):
    """Compare with the CPU at float32 precision: no TF32 in matrix products and convolutions."""
    monkeypatch.setenv("POSEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_primitives_renderer_and_its_gradients_match_the_cpu():
    joints, rots = posed_skeleton(4, seed=1)
    intr = pg.Intrinsics.framing(64, 4.0)
    outs = {}
    for dev in ("cpu", "cuda"):
        j = joints.detach().clone().to(dev).requires_grad_(True)
        out = pg.create_renderer("primitives")(j, rots.to(dev), intr, subject=2)
        (out.images * torch.linspace(0, 1, 64, device=dev)).sum().backward()
        outs[dev] = (out.images.detach().cpu(), out.alpha.detach().cpu(), j.grad.cpu())
    for a, b in zip(outs["cpu"][:2], outs["cuda"][:2]):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    # a gradient sums thousands of pixel terms in float32, in another order on the GPU: compare at 1e-3 of its scale
    grad_cpu, grad_gpu = outs["cpu"][2], outs["cuda"][2]
    torch.testing.assert_close(grad_gpu, grad_cpu, atol=1e-3 * float(grad_cpu.abs().max()), rtol=1e-3)


@pytest.mark.parametrize("name, options", [("simple", {}), ("spin", {"input_size": 64}), ("hybrik", {"input_size": 64})])
def test_estimators_predict_the_same_on_the_gpu(name, options):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pg.create_estimator(name, **options).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = est(images)
        gpu = est.to("cuda")(images.cuda())
    # HybrIK: its network's joints (soft-argmax); the IK of a random network's joints is ill-conditioned
    key = "native_joints" if name == "hybrik" else "joints"
    torch.testing.assert_close(getattr(gpu, key).cpu(), getattr(cpu, key), atol=1e-4, rtol=1e-3)


def test_hybrik_inverse_kinematics_recovers_the_pose_on_the_gpu():
    from posegen_plugins.estimators import hybrik_ik as ik
    from test_hybrik import random_pose, true_twists

    rest = ik.skeleton_rest_joints29(torch.float64)
    rots = random_pose(16, seed=0)
    joints, _ = ik.forward_kinematics29(rots, rest)
    out = ik.inverse_kinematics(joints.cuda(), true_twists(rots, rest).cuda(), rest.cuda())
    torch.testing.assert_close(out.rotations.cpu(), rots, atol=1e-9, rtol=0)


def test_anerf_renders_the_same_on_the_gpu(tmp_path):
    path = tmp_path / "surreal.tar"
    fabricate("surreal", path, torch.Generator().manual_seed(1))
    joints, rots = posed_skeleton(1, distance=6.0)
    intr = pg.Intrinsics(30.0, 30.0, 10.0, 7.0, 14, 20)
    images = {}
    for dev in ("cpu", "cuda"):
        r = pg.create_renderer("anerf", checkpoint=path, n_samples=8, n_importance=4, amp=False).to(dev)
        with torch.no_grad():
            images[dev] = r(joints.to(dev), rots.to(dev), intr, generator=torch.Generator().manual_seed(0)).images.cpu()
    torch.testing.assert_close(images["cuda"], images["cpu"], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("estimator", ["simple", "spin", "hybrik"])
def test_posegen_run_on_the_gpu_and_its_checkpoints_load_on_the_cpu(estimator, tmp_path):
    options = {} if estimator == "simple" else {"input_size": 64}
    cfg = pg.RunConfig(estimator=estimator, estimator_options=options, device="cuda", out=str(tmp_path / "run"),
                       report=estimator == "simple", **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pg.run(cfg)
    for row in result.summary["table"].values():
        assert all(np.isfinite(v) for v in row.values())
    est = pg.create_estimator(estimator, checkpoint=tmp_path / "run" / "checkpoints" / "estimator_final.pt", **options)
    assert next(est.parameters()).device.type == "cpu"


class _Crash:
    """Stops a run at its third GAN step, as a crash would (after the checkpoint of step 2)."""

    @staticmethod
    @pg.hookimpl
    def posegen_step_end(step, metrics):
        if metrics.get("stage") == "gan" and step == 3:
            raise RuntimeError("simulated crash")


def test_a_gpu_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from posegen_core import plugins as plugin_system

    cfg = pg.RunConfig(device="cuda", out=str(tmp_path / "run"), report=False, **{**TINY, "log_every": 1})
    normal = plugin_system._registry
    monkeypatch.setattr(plugin_system, "_registry", plugin_system.build_registry(extra_plugins=(_Crash,)))
    with pytest.raises(RuntimeError, match="simulated crash"):
        pg.run(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "state.pt", weights_only=True)
    assert (state["stage"], state["step"]) == ("gan", 2)
    monkeypatch.setattr(plugin_system, "_registry", normal)
    result = pg.resume(tmp_path / "run")
    assert np.isfinite(result.summary["table"]["novel_views"]["mpjpe_after"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "gan"] == [1, 2, 3, 4]
