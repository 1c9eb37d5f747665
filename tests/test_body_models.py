"""The SMPL body through smplx, on a small synthetic SMPL-format model the tests write themselves (no licensed files).

The expected values come from an independent numpy implementation of SMPL's linear blend skinning.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

import posegen_core as pg
from posegen_core import skeleton
from posegen_core.body_models import SMPLBody, create_body_model

NUM_VERTS = 48
NUM_BETAS = 10


def synthetic_smpl(seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny model with SMPL's array names, shapes and dtypes: vertices scattered around the rest skeleton."""
    rng = np.random.default_rng(seed)
    rest = skeleton.rest_joints(torch.float64).numpy() + np.array([0.0, 0.9, 0.0])  # SMPL's pelvis is not at 0
    owner = np.arange(NUM_VERTS) % 24  # each vertex belongs mostly to one joint
    v_template = rest[owner] + rng.normal(scale=0.03, size=(NUM_VERTS, 3))
    weights = rng.uniform(0.0, 0.2, size=(NUM_VERTS, 24))
    weights[np.arange(NUM_VERTS), owner] += 1.0
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((24, NUM_VERTS))
    for j in range(24):  # each joint is the mean of the two vertices it owns
        regressor[j, owner == j] = 1.0 / np.sum(owner == j)
    kintree = np.array([[2**32 - 1, *skeleton.PARENTS[1:]], list(range(24))], dtype=np.uint32)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(NUM_VERTS, 3, NUM_BETAS)),
        "posedirs": rng.normal(scale=0.005, size=(NUM_VERTS, 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": rng.integers(0, NUM_VERTS, size=(30, 3)).astype(np.uint32),
    }


def write_pkl(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """The official layout: a Python-2-compatible pickle of a dict; J_regressor is a scipy sparse matrix."""
    data = dict(arrays, J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]), bs_type="lrotmin", bs_style="lbs")
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
    return path


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> Path:
    np.savez(path, **arrays)
    return path


def numpy_smpl(model: dict[str, np.ndarray], pose: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent SMPL: shape blend, joint regression, pose blend, rigid chain, linear blend skinning."""
    v_shaped = model["v_template"] + np.einsum("vck,k->vc", model["shapedirs"], betas)
    j_rest = model["J_regressor"] @ v_shaped
    rots = Rotation.from_rotvec(pose.reshape(24, 3)).as_matrix()
    feature = (rots[1:] - np.eye(3)).reshape(-1)
    v_posed = v_shaped + np.einsum("vcp,p->vc", model["posedirs"], feature)
    world = np.zeros((24, 4, 4))
    for j, p in enumerate(skeleton.PARENTS):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = j_rest[j] - (j_rest[p] if p >= 0 else 0.0)
        world[j] = local if p < 0 else world[p] @ local
    joints = world[:, :3, 3].copy()
    skin = world.copy()
    skin[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], j_rest)
    blended = np.einsum("vj,jab->vab", model["weights"], skin)
    verts = np.einsum("vab,vb->va", blended[:, :3, :3], v_posed) + blended[:, :3, 3]
    return joints, verts


@pytest.fixture(scope="module")
def model() -> dict[str, np.ndarray]:
    return synthetic_smpl()


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
def test_smpl_matches_an_independent_numpy_implementation(tmp_path, model, fmt):
    path = (write_pkl if fmt == "pkl" else write_npz)(model, tmp_path / f"model.{fmt}")
    body = create_body_model(path)
    assert isinstance(body, SMPLBody) and body.num_betas == NUM_BETAS
    g = torch.Generator().manual_seed(1)
    go = torch.randn(3, 3, generator=g) * 0.6
    bp = torch.randn(3, 23, 3, generator=g) * 0.6
    betas = torch.randn(3, NUM_BETAS, generator=g)
    out = body(go, bp, betas)
    assert out.joints.shape == (3, 24, 3) and out.vertices.shape == (3, NUM_VERTS, 3)
    for i in range(3):
        pose = torch.cat([go[i], bp[i].reshape(-1)]).double().numpy()
        joints, verts = numpy_smpl(model, pose, betas[i].double().numpy())
        np.testing.assert_allclose(out.joints[i].double().numpy(), joints - joints[0], atol=1e-5)
        np.testing.assert_allclose(out.vertices[i].double().numpy(), verts - joints[0], atol=1e-5)
    # Global rotations are those of forward kinematics.
    _, glob = pg.forward_kinematics(go, bp)
    torch.testing.assert_close(out.rotations, glob, atol=1e-5, rtol=0)


def test_smpl_joints_depend_on_shape_and_equal_fk_of_the_shaped_rest_joints(tmp_path, model):
    body = SMPLBody(write_npz(model, tmp_path / "m.npz"), dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    go = torch.randn(2, 3, generator=g, dtype=torch.float64)
    bp = torch.randn(2, 23, 3, generator=g, dtype=torch.float64) * 0.5
    betas = torch.randn(2, NUM_BETAS, generator=g, dtype=torch.float64) * 2
    shaped = body(go, bp, betas)
    neutral = body(go, bp)
    assert (shaped.joints - neutral.joints).abs().max() > 1e-3, "joints must depend on betas"
    for i in range(2):
        v_shaped = model["v_template"] + np.einsum("vck,k->vc", model["shapedirs"], betas[i].numpy())
        rest = torch.from_numpy(model["J_regressor"] @ v_shaped)
        fk, _ = pg.forward_kinematics(go[i : i + 1], bp[i : i + 1], rest_joints=rest - rest[0])
        torch.testing.assert_close(shaped.joints[i : i + 1], fk, atol=1e-6, rtol=0)  # smplx stores float32 arrays
    torch.testing.assert_close(shaped.joints[:, 0], torch.zeros(2, 3, dtype=torch.float64))


def test_fewer_betas_are_zero_padded_and_too_many_refused(tmp_path, model):
    body = SMPLBody(write_npz(model, tmp_path / "m.npz"))
    go, bp = torch.zeros(1, 3), torch.zeros(1, 23, 3)
    short = torch.tensor([[0.5, -1.0]])
    torch.testing.assert_close(body(go, bp, short).joints, body(go, bp, torch.nn.functional.pad(short, (0, 8))).joints)
    with pytest.raises(pg.ShapeError, match="has 10"):
        body(go, bp, torch.zeros(1, 11))
    with pytest.raises(pg.ShapeError, match=r"\(B, 23, 3\)"):
        body(go, torch.zeros(1, 69))


def test_folder_with_gendered_file_names(tmp_path, model):
    write_pkl(model, tmp_path / "SMPL_FEMALE.pkl")
    (tmp_path / "smpl").mkdir()
    write_npz(synthetic_smpl(seed=5), tmp_path / "smpl" / "SMPL_NEUTRAL.npz")
    female = create_body_model(tmp_path, gender="female")
    neutral = create_body_model(tmp_path)
    assert female.path.name == "SMPL_FEMALE.pkl" and neutral.path.name == "SMPL_NEUTRAL.npz"
    with pytest.raises(pg.ConfigError, match="SMPL_MALE.pkl"):
        create_body_model(tmp_path, gender="male")


def test_missing_file_says_where_to_get_smpl(tmp_path):
    with pytest.raises(pg.ConfigError, match="smpl.is.tue.mpg.de"):
        create_body_model(tmp_path / "nope.pkl")


def test_incomplete_or_wrong_model_files_are_refused_by_name(tmp_path, model):
    partial = {k: v for k, v in model.items() if k not in ("posedirs", "weights")}
    with pytest.raises(pg.ConfigError, match="missing posedirs, weights"):
        SMPLBody(write_npz(partial, tmp_path / "partial.npz"))
    bad = dict(model, J_regressor=model["J_regressor"][:17])
    with pytest.raises(pg.ConfigError, match=r"J_regressor has shape \(17, 48\); expected \(24, 48\)"):
        SMPLBody(write_npz(bad, tmp_path / "bad.npz"))
    tree = model["kintree_table"].copy()
    tree[0, 5] = 1
    with pytest.raises(pg.ConfigError, match="kinematic tree"):
        SMPLBody(write_npz(dict(model, kintree_table=tree), tmp_path / "tree.npz"))
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(pg.ConfigError, match="could not read SMPL model"):
        SMPLBody(tmp_path / "junk.pkl")


def test_faces_are_exposed(tmp_path, model):
    body = SMPLBody(write_npz(model, tmp_path / "m.npz"))
    assert body.faces.shape == (30, 3)
    assert torch.equal(body.faces, torch.from_numpy(model["f"].astype(np.int64)))
