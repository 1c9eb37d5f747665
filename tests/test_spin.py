"""SPIN estimator: official state-dict layout, checkpoint loading and errors, 6D convention, preprocessing, IEF
from the mean parameters, body-model outputs, fine-tuning options. Small inputs keep it fast on 2 CPU cores."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import posegen_core as pg
from posegen_core.errors import CheckpointError, ConfigError, DataError, ShapeError
from posegen_plugins.estimators import spin as spin_mod
from posegen_plugins.estimators.spin import SPIN

sys.path.insert(0, str(Path(__file__).parent))
from official_layouts import fabricate, reference_layout, small_images  # noqa: E402


@pytest.fixture(scope="module")
def model() -> SPIN:
    return SPIN(warn=False, input_size=64)


# --------------------------------------------------------------------------------------------------- layout
def test_state_dict_has_exactly_the_official_keys_and_shapes(model):
    layout = reference_layout("spin_hmr_state_dict.txt")
    own = model.state_dict()
    assert list(own) == [k for k, _ in layout]
    assert {k: tuple(v.shape) for k, v in own.items()} == dict(layout)


def test_fabricated_official_checkpoint_loads_strictly_through_create_estimator(tmp_path):
    state = fabricate(reference_layout("spin_hmr_state_dict.txt"))
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": state, "epoch": 3}, path)  # SPIN's saver layout
    est = pg.create_estimator("spin", checkpoint=path, input_size=64)
    own = est.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)


def test_posegen_checkpoint_round_trip_restores_options_and_outputs(tmp_path, model):
    path = tmp_path / "spin_posegen.pt"
    model.save_checkpoint(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint was given: no random-init warning
        again = pg.create_estimator("spin", checkpoint=path)
    assert again.input_size == 64
    model.eval(), again.eval()
    x = small_images()
    with torch.no_grad():
        a, b = model(x), again(x)
    torch.testing.assert_close(a.joints, b.joints)
    torch.testing.assert_close(a.camera, b.camera)


def test_hybrik_checkpoint_is_refused_with_the_right_estimator_named(tmp_path):
    state = fabricate(reference_layout("hybrik_res34_cam_state_dict.txt"))
    path = tmp_path / "pretrained_w_cam.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"official hybrik checkpoint.*--estimator hybrik"):
        pg.create_estimator("spin", checkpoint=path, input_size=64)


def test_truncated_checkpoint_gives_a_clear_error(tmp_path, model):
    full = tmp_path / "full.pt"
    model.save_checkpoint(full)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        pg.create_estimator("spin", checkpoint=cut)


def test_mismatched_checkpoint_reports_missing_and_misshaped_keys(tmp_path):
    state = fabricate(reference_layout("spin_hmr_state_dict.txt"))
    del state["deccam.bias"]
    state["fc1.weight"] = torch.zeros(1024, 2000)
    path = tmp_path / "bad.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        pg.create_estimator("spin", checkpoint=path, input_size=64)
    msg = str(info.value)
    assert "deccam.bias" in msg and "fc1.weight" in msg and "(1024, 2000)" in msg
    est = pg.create_estimator("spin", checkpoint=path, input_size=64, strict=False)  # opt-out still loads the rest
    torch.testing.assert_close(est.state_dict()["fc2.weight"], state["fc2.weight"])


def test_random_init_warns_loudly(capsys):
    with pytest.warns(UserWarning, match="RANDOM weights"):
        SPIN(input_size=64)
    assert "RANDOM weights" in capsys.readouterr().err


def test_same_seed_same_network():
    a, b = SPIN(warn=False, seed=3, input_size=64), SPIN(warn=False, seed=3, input_size=64)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# --------------------------------------------------------------------------------------------------- conventions
def test_6d_matches_spin_definition_on_hand_made_cases():
    # Columns of the row-major 3x2 matrix are a1, a2; Gram-Schmidt; b3 = b1 x b2; R = [b1 b2 b3].
    cases = {
        (1.0, 0.0, 0.0, 1.0, 0.0, 0.0): [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        (0.0, 1.0, 1.0, 0.0, 0.0, 0.0): [[0, 1, 0], [1, 0, 0], [0, 0, -1]],  # a1 = y, a2 = x -> b3 = y x x = -z
        (2.0, 1.0, 0.0, 1.0, 0.0, 0.0): [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # a1 = 2x, a2 = x + y -> identity
        (0.0, 0.0, 0.0, -3.0, 5.0, 0.0): [[0, 0, 1], [0, -1, 0], [1, 0, 0]],  # a1 = 5z, a2 = -3y
    }
    for six, expected in cases.items():
        got = pg.rotations.rot6d_to_matrix(torch.tensor(six, dtype=torch.float64))
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_preprocessing_matches_a_hand_computed_crop():
    est = SPIN(warn=False)  # native 224
    colour = torch.tensor([0.2, 0.5, 0.9])
    img = colour.view(1, 3, 1, 1).expand(1, 3, 112, 224).clone()  # wide image: padded top and bottom by 56 rows
    x = est.preprocess(img)
    mean, std = torch.tensor(spin_mod.IMG_NORM_MEAN), torch.tensor(spin_mod.IMG_NORM_STD)
    assert x.shape == (1, 3, 224, 224)
    inside = (colour - mean) / std
    outside = (0.0 - mean) / std
    torch.testing.assert_close(x[0, :, 56:168, :], inside.view(3, 1, 1).expand(3, 112, 224))
    torch.testing.assert_close(x[0, :, :56, :], outside.view(3, 1, 1).expand(3, 56, 224))
    torch.testing.assert_close(x[0, :, 168:, :], outside.view(3, 1, 1).expand(3, 56, 224))
    # crop_scale 2: a 112x112 image lands in the middle of a 224 square (56 px of zeros all round), no resizing.
    est.crop_scale = 2.0
    y = est.preprocess(colour.view(1, 3, 1, 1).expand(1, 3, 112, 112).clone())
    torch.testing.assert_close(y[0, :, 56:168, 56:168], inside.view(3, 1, 1).expand(3, 112, 112))
    torch.testing.assert_close(y[0, :, 56:168, :56], outside.view(3, 1, 1).expand(3, 112, 56))


def zero_residuals(est: SPIN) -> None:
    with torch.no_grad():
        for dec in (est.decpose, est.decshape, est.deccam):
            dec.weight.zero_()
            dec.bias.zero_()


def test_mean_params_file_and_ief_start(tmp_path):
    g = torch.Generator().manual_seed(1)
    rots = pg.rotations.axis_angle_to_matrix(torch.randn(24, 3, generator=g) * 0.3)
    pose6d = pg.rotations.matrix_to_rot6d(rots).reshape(144).numpy()
    shape = np.linspace(-1, 1, 10)  # float64, as SPIN's file stores it
    path = tmp_path / "smpl_mean_params.npz"
    np.savez(path, pose=pose6d, shape=shape, cam=np.array([0.8, 0.1, -0.2]))
    est = SPIN(warn=False, mean_params=path, input_size=64).eval()
    zero_residuals(est)  # with no residual the IEF must return the mean parameters
    with torch.no_grad():
        out = est(small_images(1))
    torch.testing.assert_close(out.rotations[0], rots, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.betas[0], torch.tensor(shape, dtype=torch.float32))
    torch.testing.assert_close(out.camera[0], torch.tensor([0.8, 0.1, -0.2]))
    # Joints: the skeleton posed by those rotations, pelvis at the origin (independent FK).
    joints, _ = pg.kinematics.batch_rigid_transform(rots[None], pg.skeleton.rest_joints())
    torch.testing.assert_close(out.joints, joints - joints[:, :1], atol=1e-5, rtol=0)
    assert out.extras["cam_t"][0, 2].item() == pytest.approx(2 * 5000 / (224 * 0.8), rel=1e-5)


def test_bad_mean_params_file(tmp_path):
    path = tmp_path / "means.npz"
    np.savez(path, pose=np.zeros(144), shape=np.zeros(10))
    with pytest.raises(DataError, match="'cam'"):
        SPIN(warn=False, mean_params=path)
    with pytest.raises(DataError, match="not found"):
        SPIN(warn=False, mean_params=tmp_path / "nope.npz")


def test_default_mean_pose_is_upright_and_facing_the_camera():
    est = SPIN(warn=False, input_size=64).eval()
    zero_residuals(est)
    with torch.no_grad():
        j = est(small_images(1)).joints[0]
    assert j[15, 1] < -0.4  # head well above the pelvis (camera y points down)
    assert j[1, 0] > 0.03 and j[2, 0] < -0.03  # subject's left on the image right: facing the camera
    assert abs(float(j[15, 2])) < 0.05  # upright: no depth offset of the head


# --------------------------------------------------------------------------------------------------- bad input
def test_bad_images_are_refused(model):
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        model(small_images() * 255)
    with pytest.raises(ShapeError, match=r"\(B, 3, \*, \*\)"):
        model(torch.rand(2, 1, 32, 32))


def test_missing_smpl_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="SMPL model file not found"):
        SPIN(warn=False, smpl_model=tmp_path / "SMPL_NEUTRAL.pkl")


def test_smpl_path_uses_predicted_shape(tmp_path):
    from synthetic_smpl import write_synthetic_smpl

    smpl = write_synthetic_smpl(tmp_path / "SMPL_NEUTRAL.npz")
    est = SPIN(warn=False, smpl_model=smpl, input_size=64).eval()
    with torch.no_grad():
        out = est(small_images(2))
        expected = pg.SMPLBody(smpl).forward_rotmats(out.rotations, out.betas)
    torch.testing.assert_close(out.joints, expected.joints)
    assert out.extras["vertices"].shape == (2, 6890, 3)
    assert "smpl" not in " ".join(est.state_dict())  # the SMPL model never enters checkpoints


# --------------------------------------------------------------------------------------------------- fine-tuning
def test_scale_alignment_uses_frobenius_norms():
    est = SPIN(warn=False, input_size=64, scale_align=True)
    target = pg.camera.root_relative(torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2)))
    out = pg.EstimatorOutput(joints=target * 0.5)
    assert est.joint_loss(out, target).item() == pytest.approx(0.0, abs=1e-6)
    est.scale_align = False
    expected = (0.5 * target).norm(dim=-1).mean()
    assert est.joint_loss(out, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_two_step_finetune_with_frozen_batchnorm():
    est = SPIN(warn=False, input_size=64, freeze_bn=True).train()
    assert not est.bn1.training and est.fc1.training
    stats = est.bn1.running_mean.clone()
    before = est.decpose.weight.detach().clone()
    opt = torch.optim.SGD(est.parameters(), lr=1e-3)
    target = pg.camera.root_relative(torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(4)) * 0.3)
    for step in range(2):
        torch.manual_seed(step)  # dropout draws from the global generator
        loss = est.joint_loss(est(small_images(2, 64, 64, seed=step)), target, threshold=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert torch.equal(est.bn1.running_mean, stats)  # frozen BN keeps the pre-trained statistics
    assert not torch.equal(est.decpose.weight, before)
