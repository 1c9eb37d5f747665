"""MPJPE, PA-MPJPE (similarity Procrustes), PCK and AUC against hand-computed values and independent solvers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import metrics


def _random_poses(b: int = 6, j: int = 14, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.3, size=(b, j, 3))


def _independent_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Proper rotation from scipy's Kabsch solver (align_vectors), then the optimal scale and translation."""
    out = []
    for p, g in zip(pred, gt):
        p0, g0 = p - p.mean(0), g - g.mean(0)
        rot, _ = Rotation.align_vectors(g0, p0)  # proper rotation minimising sum ||g0 - R p0||^2
        rp = rot.apply(p0)
        s = (g0 * rp).sum() / (p0 * p0).sum()
        out.append(np.linalg.norm(s * rp - g0, axis=-1).mean())
    return np.array(out)


def test_mpjpe_hand_computed_and_root_option():
    gt = np.zeros((2, 3, 3))
    pred = gt + np.array([0.03, 0.04, 0.0])
    assert torch.allclose(metrics.mpjpe(pred, gt), torch.full((2,), 0.05, dtype=torch.float64))
    assert torch.allclose(metrics.mpjpe(pred, gt, root=0), torch.zeros(2, dtype=torch.float64))
    pred[1, 2] = [0.0, 0.0, 0.3]  # one joint off by 30 cm: per-joint errors 0.05, 0.05, 0.3
    assert torch.allclose(metrics.per_joint_error(pred, gt)[1], torch.tensor([0.05, 0.05, 0.3], dtype=torch.float64))
    assert math.isclose(float(metrics.mpjpe(pred, gt)[1]), 0.4 / 3)


def test_pa_mpjpe_zero_for_similarity_transformed_copy():
    gt = _random_poses()
    rots = Rotation.random(len(gt), random_state=3).as_matrix()
    scale = np.array([0.5, 1.0, 2.0, 3.7, 0.9, 1.3])[:, None, None]
    shift = np.random.default_rng(4).normal(size=(len(gt), 1, 3))
    pred = scale * np.einsum("bij,bkj->bki", rots, gt) + shift
    assert float(metrics.mpjpe(pred, gt).min()) > 0.05  # not trivially aligned before Procrustes
    assert torch.allclose(metrics.pa_mpjpe(pred, gt), torch.zeros(len(gt), dtype=torch.float64), atol=1e-12)
    # float32 torch input stays float32 and still aligns to within float precision
    out32 = metrics.pa_mpjpe(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32))
    assert out32.dtype == torch.float32 and float(out32.max()) < 1e-5
    # the recovered transform is the inverse of the one applied
    sim = metrics.similarity_transform(pred, gt)
    assert torch.allclose(sim.scale, torch.tensor(1.0 / scale.ravel()), atol=1e-10)
    assert torch.allclose(sim.rotation, torch.tensor(rots).transpose(1, 2), atol=1e-10)


def test_mirrored_pose_is_not_aligned_by_a_reflection():
    gt = _random_poses(seed=7)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection, which no rotation can undo
    sim = metrics.similarity_transform(mirrored, gt)
    assert torch.allclose(torch.linalg.det(sim.rotation), torch.ones(len(gt), dtype=torch.float64))
    err = metrics.pa_mpjpe(mirrored, gt)
    assert float(err.min()) > 0.01
    np.testing.assert_allclose(err.numpy(), _independent_pa_mpjpe(mirrored, gt), rtol=1e-9, atol=1e-12)


def test_pa_mpjpe_matches_independent_solver_on_noisy_poses():
    gt = _random_poses(b=8, j=17, seed=11)
    rng = np.random.default_rng(12)
    rots = Rotation.random(8, random_state=13).as_matrix()
    pred = 1.2 * np.einsum("bij,bkj->bki", rots, gt) + 0.05 * rng.normal(size=gt.shape) + 0.4
    np.testing.assert_allclose(metrics.pa_mpjpe(pred, gt).numpy(), _independent_pa_mpjpe(pred, gt), rtol=1e-9)
    aligned = metrics.procrustes_align(pred, gt).numpy()
    # the alignment is optimal: perturbing it in any similarity direction can only raise the squared error
    base = ((aligned - gt) ** 2).sum()
    for delta in (Rotation.from_rotvec([0.01, 0, 0]).as_matrix(), Rotation.from_rotvec([0, 0, -0.01]).as_matrix()):
        centre = aligned.mean(1, keepdims=True)
        moved = np.einsum("ij,bkj->bki", delta, aligned - centre) + centre
        assert ((moved - gt) ** 2).sum() > base
    centre = aligned.mean(1, keepdims=True)
    assert (((1.01 * (aligned - centre) + centre) - gt) ** 2).sum() > base


def test_pa_mpjpe_hand_computed_square():
    # gt: a unit square in the xy plane; pred: the same corners lifted alternately by +-1 in z.
    # Cross-covariance diag(2, 2, 0) -> R = I, scale = 4 / 8 = 0.5, each joint off by sqrt(0.5^2 + 0.5^2).
    gt = np.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])
    pred = gt + np.array([[0, 0, 1.0], [0, 0, -1], [0, 0, 1], [0, 0, -1]])
    assert math.isclose(float(metrics.mpjpe(pred, gt)), 1.0)
    assert math.isclose(float(metrics.pa_mpjpe(pred, gt)), math.sqrt(0.5), rel_tol=1e-12)
    sim = metrics.similarity_transform(pred, gt)
    assert math.isclose(float(sim.scale), 0.5, rel_tol=1e-12)
    assert torch.allclose(sim.rotation[0], torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_collapsed_prediction_gets_zero_scale():
    gt = _random_poses(b=1)
    pred = np.ones_like(gt)
    aligned = metrics.procrustes_align(pred, gt)
    assert torch.allclose(aligned, torch.tensor(gt.mean(1, keepdims=True)).expand_as(aligned))


def test_pck_and_auc_known_cases():
    gt = np.zeros((1, 4, 3))
    pred = np.array([[[0.012, 0, 0], [0.102, 0, 0], [0.15, 0, 0], [0.2, 0, 0]]])
    assert float(metrics.pck(pred, gt)) == 0.75  # 12, 102 and 150 mm count at 150 mm; 200 mm does not
    assert float(metrics.pck(pred, gt, threshold=0.1)) == 0.25
    # thresholds 0..150 step 5: 12 mm counts from 15 mm (28 of 31), 102 mm from 105 mm (10), 150 mm at 150 (1)
    assert math.isclose(float(metrics.auc(pred, gt)), (28 + 10 + 1 + 0) / (4 * 31))
    assert float(metrics.auc(gt, gt)) == 1.0 and float(metrics.pck(gt, gt)) == 1.0
    assert len(metrics.AUC_THRESHOLDS) == 31 and metrics.AUC_THRESHOLDS[-1] == 0.15


def test_summarize_reports_millimetres_and_percent():
    gt = _random_poses(b=3, j=2)
    pred = gt + np.array([0.0, 0.0, 0.2])
    s = metrics.summarize(pred, gt, joint_names=["a", "b"])
    assert math.isclose(s["mpjpe_mm"], 200.0, rel_tol=1e-9)
    assert s["pa_mpjpe_mm"] < 1e-6
    assert s["pck150_percent"] == 0.0 and s["samples"] == 3 and s["joints"] == 2
    assert math.isclose(s["per_joint_mpjpe_mm"]["b"], 200.0, rel_tol=1e-9)


def test_bad_input_messages():
    with pytest.raises(pg.ShapeError, match=r"same shape .*14 evaluation joints"):
        metrics.mpjpe(np.zeros((2, 14, 3)), np.zeros((2, 17, 3)))
    with pytest.raises(pg.ShapeError, match=r"\(B, J, 3\)"):
        metrics.pa_mpjpe(np.zeros((2, 14, 2)), np.zeros((2, 14, 2)))
    with pytest.raises(pg.ShapeError, match="NaN"):
        metrics.mpjpe(np.full((1, 3, 3), np.nan), np.zeros((1, 3, 3)))
    with pytest.raises(pg.ShapeError, match="numpy array"):
        metrics.mpjpe([[0.0, 0.0, 0.0]], np.zeros((1, 3)))
    with pytest.raises(pg.ShapeError, match="out of range"):
        metrics.mpjpe(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), root=5)
