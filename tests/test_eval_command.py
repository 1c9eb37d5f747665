"""``posegen eval`` end to end on a tiny dataset the test writes, checked against an independent computation, and the
SMPL-mesh joint path (J_regressor_h36m) on a small synthetic SMPL-format model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import evaluation, spin_data
from posegen_core.cli import cli

#: SMPL-24 indices of the 14 LSP-order joints (R ankle ... L wrist, neck, head), written out independently here.
LSP14 = [8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12, 15]
N = 4


def _camera_poses(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    go = torch.tensor([np.pi, 0.0, 0.0]).expand(n, 3) + 0.2 * torch.randn(n, 3, generator=g)  # upright, facing camera
    body = 0.3 * torch.randn(n, 23, 3, generator=g)
    return go, body


def _independent_pa(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    out = []
    for p, q in zip(pred, gt):
        p0, q0 = p - p.mean(0), q - q.mean(0)
        rot, _ = Rotation.align_vectors(q0, p0)
        rp = rot.apply(p0)
        out.append(np.linalg.norm((q0 * rp).sum() / (p0 * p0).sum() * rp - q0, axis=-1).mean())
    return np.array(out)


@pytest.fixture()
def dataset(tmp_path):
    """Four 80x70 images and an h36m-style npz whose boxes (side 64 = simple's input size) need no resizing."""
    rng = np.random.default_rng(0)
    (tmp_path / "images" / "S9").mkdir(parents=True)
    names, pixels = [], []
    for i in range(N):
        img = rng.integers(0, 256, size=(80, 70, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / "images" / "S9" / f"{i}.png")
        names.append(f"S9/{i}.png")
        pixels.append(img)
    go, body = _camera_poses(N, seed=1)
    joints, _ = pg.forward_kinematics(go, body)
    spin_data.write_spin_annotations(
        tmp_path / "h36m_valid_protocol1.npz", imgname=names, center=np.tile([[35.0, 40.0]], (N, 1)),
        scale=np.full(N, 0.32), S=spin_data.spin_j24_from_smpl24(joints),
    )
    return tmp_path, np.stack(pixels), joints.numpy()


@pytest.fixture()
def checkpoint(tmp_path):
    """A ``simple`` estimator with perturbed weights (so the prediction depends on the image), saved as posegen does."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pg.create_estimator("simple")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in est.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    path = tmp_path / "simple.pt"
    est.save_checkpoint(path)
    return path


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)


def test_eval_end_to_end_matches_an_independent_computation(dataset, checkpoint):
    root, pixels, gt_joints = dataset
    out = root / "res" / "results.json"
    result = _invoke("--estimator", "simple", "--checkpoint", str(checkpoint), "--dataset",
                     f"h36m-p1:{root / 'h36m_valid_protocol1.npz'}", "--images", str(root / "images"),
                     "--batch-size", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    rec = json.loads(out.read_text())
    assert rec["dataset"] == "h36m-p1" and rec["samples"] == N and rec["joints"] == 14
    assert rec["comparable_with_literature"] is False and "approximated by SMPL-24 joints" in rec["notes"][0]

    # independent: SPIN's box here is columns 3..66, rows 8..71 (no resize), predicted with the same weights
    est = pg.create_estimator("simple", checkpoint=checkpoint).eval()
    crops = torch.tensor(pixels[:, 8:72, 3:67].transpose(0, 3, 1, 2) / 255.0, dtype=torch.float32)
    with torch.no_grad():
        pj = est(crops).joints.double().numpy()
    pred = (pj - pj[:, :1])[:, LSP14]
    gt = (gt_joints - gt_joints[:, :1])[:, LSP14]
    mpjpe = np.linalg.norm(pred - gt, axis=-1).mean() * 1000
    assert rec["mpjpe_mm"] == pytest.approx(mpjpe, abs=1e-3)
    assert rec["pa_mpjpe_mm"] == pytest.approx(_independent_pa(pred, gt).mean() * 1000, abs=1e-3)
    err = np.linalg.norm(pred - gt, axis=-1)
    assert rec["pck150_percent"] == pytest.approx((err <= 0.15).mean() * 100)
    assert rec["per_joint_mpjpe_mm"]["left_wrist"] == pytest.approx(err[:, 11].mean() * 1000, abs=1e-3)
    assert "MPJPE (mm)" in result.stdout and f"{mpjpe:.1f}" in result.stdout


def test_eval_bad_input_gives_clear_errors(dataset, checkpoint, tmp_path):
    root, _, _ = dataset
    npz = root / "h36m_valid_protocol1.npz"
    base = ["--estimator", "simple", "--checkpoint", str(checkpoint), "--images", str(root / "images")]
    cases = [
        (["--dataset", f"h36m:{npz}"], "unknown dataset kind 'h36m'"),
        (["--dataset", str(npz)], "KIND:FILE"),
        (["--dataset", f"3dpw:{npz}"], "lacks the key(s) pose, shape, gender"),
        (["--dataset", f"h36m-p2:{root / 'missing.npz'}"], "not found"),
    ]
    for extra, message in cases:
        result = _invoke(*base, *extra)
        assert result.exit_code == 2 and message in result.output, result.output
    result = _invoke("--estimator", "simple", "--checkpoint", str(checkpoint), "--dataset", f"h36m-p1:{npz}",
                     "--images", str(root))
    assert result.exit_code == 2 and "images are missing" in result.output and "relative to" in result.output
    bad_ckpt = tmp_path / "trunc.pt"
    bad_ckpt.write_bytes(checkpoint.read_bytes()[:100])
    result = _invoke("--estimator", "simple", "--checkpoint", str(bad_ckpt), "--dataset", f"h36m-p1:{npz}",
                     "--images", str(root / "images"))
    assert result.exit_code == 2 and "truncated" in result.output
    result = _invoke(*base, "--dataset", f"h36m-p1:{npz}", "--regressor", str(npz))
    assert result.exit_code == 2 and "needs --smpl-model" in result.output
    result = _invoke(*base, "--dataset", f"h36m-p1:{npz}", "--estimator", "nope")
    assert result.exit_code == 2 and "unknown estimator 'nope'" in result.output


# ------------------------------------------------------------------------------------------------ SMPL mesh path
V = 40
#: H36M-17 joints -> the SMPL joint whose vertex the synthetic regressor picks (thorax -> neck, jaw/head -> head).
H36M_FROM_SMPL = [0, 1, 4, 7, 2, 5, 8, 6, 12, 15, 15, 16, 18, 20, 17, 19, 21]


def _synthetic_smpl(scale: float, seed: int) -> dict[str, np.ndarray]:
    """Vertices 0..23 sit on the joints (J_regressor picks them, skinning weight 1 on their joint, no pose blend), so
    posed vertex k is exactly posed joint k; the other vertices are scattered and blended."""
    rng = np.random.default_rng(seed)
    rest = pg.skeleton.rest_joints(torch.float64).numpy() * scale
    owner = np.arange(V) % 24
    v = rest[owner] + np.where(np.arange(V)[:, None] < 24, 0.0, rng.normal(scale=0.03, size=(V, 3)))
    weights = np.zeros((V, 24))
    weights[np.arange(V), owner] = 1.0
    weights[24:] = rng.uniform(0.1, 1.0, size=(V - 24, 24))
    weights /= weights.sum(1, keepdims=True)
    posedirs = rng.normal(scale=0.005, size=(V, 3, 207))
    posedirs[:24] = 0.0
    return {
        "v_template": v, "shapedirs": rng.normal(scale=0.02, size=(V, 3, 10)), "posedirs": posedirs,
        "J_regressor": np.eye(24, V), "weights": weights,
        "kintree_table": np.array([[2**32 - 1, *pg.skeleton.PARENTS[1:]], list(range(24))], dtype=np.uint32),
        "f": rng.integers(0, V, size=(20, 3)).astype(np.uint32),
    }


def _fk_reference(model: dict[str, np.ndarray], pose: torch.Tensor, betas: torch.Tensor) -> np.ndarray:
    """Our own FK on the shaped rest joints (J = shaped vertices 0..23), pelvis-relative, LSP-14 order."""
    rest = torch.tensor(model["v_template"][:24]) + torch.einsum("jcs,bs->bjc", torch.tensor(model["shapedirs"][:24]),
                                                                betas.double())
    rots = pg.rotations.axis_angle_to_matrix(pose.double().reshape(-1, 24, 3))
    joints, _ = pg.kinematics.batch_rigid_transform(rots, rest)
    return (joints - joints[:, :1])[:, LSP14].numpy()


@pytest.fixture()
def smpl_folder(tmp_path):
    folder = tmp_path / "smpl_models"
    folder.mkdir()
    models = {"NEUTRAL": _synthetic_smpl(1.0, 0), "MALE": _synthetic_smpl(1.1, 1), "FEMALE": _synthetic_smpl(0.9, 2)}
    for g, m in models.items():
        np.savez(folder / f"SMPL_{g}.npz", **m)
    reg = np.zeros((17, V))
    reg[np.arange(17), H36M_FROM_SMPL] = 1.0
    np.save(tmp_path / "J_regressor_h36m.npy", reg)
    return folder, tmp_path / "J_regressor_h36m.npy", models


def test_mesh_joints_for_3dpw_ground_truth_use_the_gendered_model(smpl_folder):
    folder, reg, models = smpl_folder
    sets = evaluation.build_joint_sets(spin_data.DATASET_KINDS["3dpw"], folder, reg)
    assert sets.mesh_based and sets.notes == [] and set(sets.smpl) == {"neutral", "male", "female"}
    go, body = _camera_poses(4, seed=3)
    pose = torch.cat([go, body.reshape(4, 69)], 1)
    betas = torch.randn(4, 10, generator=torch.Generator().manual_seed(4))
    gender = np.array(["m", "f", "f", "m"])
    ann = spin_data.SpinAnnotations(path="x", imgname=np.array(["a"] * 4), center=np.zeros((4, 2)), scale=np.ones(4),
                                    pose=pose.numpy().astype(np.float64), shape=betas.numpy().astype(np.float64),
                                    gender=gender)
    gt = sets.ground_truth(ann, np.arange(4)).double().numpy()
    for i, g in enumerate(gender):
        model = models["MALE" if g == "m" else "FEMALE"]
        np.testing.assert_allclose(gt[i : i + 1], _fk_reference(model, pose[i : i + 1], betas[i : i + 1]), atol=1e-5)
    # predictions go through the neutral model with the estimator's rotations and betas
    rots = pg.rotations.axis_angle_to_matrix(pose.reshape(4, 24, 3))
    pred = sets.prediction(pg.EstimatorOutput(joints=torch.zeros(4, 24, 3), rotations=rots, betas=betas))
    np.testing.assert_allclose(pred.double().numpy(), _fk_reference(models["NEUTRAL"], pose, betas), atol=1e-5)


def test_eval_cli_with_smpl_and_regressor_is_marked_comparable(dataset, checkpoint, smpl_folder, tmp_path):
    root, _, _ = dataset
    folder, reg, _ = smpl_folder
    out = tmp_path / "r.json"
    result = _invoke("--estimator", "simple", "--checkpoint", str(checkpoint), "--dataset",
                     f"h36m-p2:{root / 'h36m_valid_protocol1.npz'}", "--images", str(root / "images"),
                     "--smpl-model", str(folder), "--regressor", str(reg), "--limit", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    rec = json.loads(out.read_text())
    assert rec["comparable_with_literature"] is True and rec["notes"] == [] and rec["samples"] == 2
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((17, 6890)))
    result = _invoke("--estimator", "simple", "--checkpoint", str(checkpoint), "--dataset",
                     f"h36m-p2:{root / 'h36m_valid_protocol1.npz'}", "--images", str(root / "images"),
                     "--smpl-model", str(folder), "--regressor", str(wrong))
    assert result.exit_code == 2 and f"shape (17, {V})" in result.output
