"""HybrIK estimator: official layouts (ResNet-34 cam, HRNet-W48), checkpoint loading and errors, the twist-and-swing
IK against forward kinematics, soft-argmax and camera back-projection by hand, preprocessing quirk, fine-tuning."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import posegen_core as pg
from posegen_core.errors import CheckpointError, ConfigError
from posegen_plugins.estimators import hybrik_ik as ik
from posegen_plugins.estimators.hybrik import (
    DEPTH_FACTOR, FOCAL_LENGTH, INPUT_SIZE, NORM_MEAN, NORM_STD, HybrIK, soft_argmax_3d,
)

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_smpl import write_synthetic_smpl  # noqa: E402
from official_layouts import fabricate, reference_layout, small_images  # noqa: E402

RES34 = "hybrik_res34_cam_state_dict.txt"
HRNET = "hybrik_hrnet_w48_state_dict.txt"


@pytest.fixture(scope="module")
def res34() -> HybrIK:
    return HybrIK(warn=False, input_size=64)


@pytest.fixture(scope="module")
def hrnet() -> HybrIK:
    return HybrIK(warn=False, backbone="hrnet48", input_size=32)  # the smallest HRNet input: keeps CPU tests fast


def smpl_buffers() -> dict[str, torch.Tensor]:
    """The SMPL entries an official HybrIK file carries (tiny stand-ins: posegen filters them by name)."""
    names = ("faces_tensor", "v_template", "shapedirs", "posedirs", "J_regressor", "J_regressor_h36m",
             "children_map", "parents", "lbs_weights")
    return {f"smpl.{n}": torch.zeros(2) for n in names}


# --------------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("which,ref", [("res34", RES34), ("hrnet", HRNET)])
def test_state_dict_has_exactly_the_official_keys_and_shapes(which, ref, request):
    model = request.getfixturevalue(which)
    layout = reference_layout(ref)
    own = model.state_dict()
    assert list(own) == [k for k, _ in layout]
    assert {k: tuple(v.shape) for k, v in own.items()} == dict(layout)


def test_official_resnet34_file_loads_strictly_and_smpl_buffers_are_filtered(tmp_path):
    state = fabricate(reference_layout(RES34), seed=1)
    path = tmp_path / "pretrained_w_cam.pth"
    torch.save({**state, **smpl_buffers()}, path)  # HybrIK saves the bare state dict, SMPL buffers included
    est = pg.create_estimator("hybrik", checkpoint=path, input_size=64)
    assert est.backbone == "resnet34" and est.has_sigma
    own = est.state_dict()
    assert set(own) == set(state) and all(torch.equal(own[k], state[k]) for k in state)


def test_official_hrnet_file_picks_the_backbone_from_the_checkpoint(tmp_path, res34):
    state = fabricate(reference_layout(HRNET), seed=2)
    path = tmp_path / "hybrik_hrnet.pth"
    data = {"model": {**state, **smpl_buffers()}}
    torch.save(data, path)
    est = pg.create_estimator("hybrik", checkpoint=path, input_size=32)
    assert est.backbone == "hrnet48"
    own = est.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)
    with pytest.raises(CheckpointError, match=r"hrnet48.*backbone hrnet48"):  # a ResNet-34 model refuses it
        res34.load_checkpoint_data(data, path)


def test_resnet34_file_from_before_the_sigma_head_loads_with_a_warning(tmp_path):
    state = fabricate(reference_layout(RES34), seed=3)
    del state["decsigma.weight"], state["decsigma.bias"]
    path = tmp_path / "pretrained_w_cam_2022.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="sigma"):
        est = pg.create_estimator("hybrik", checkpoint=path, input_size=64)
    assert not est.has_sigma


def test_spin_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": fabricate(reference_layout("spin_hmr_state_dict.txt"))}, path)
    with pytest.raises(CheckpointError, match=r"official spin checkpoint.*--estimator spin"):
        pg.create_estimator("hybrik", checkpoint=path, input_size=64)


def test_truncated_file_and_unknown_backbone(tmp_path, res34):
    full = tmp_path / "full.pt"
    res34.save_checkpoint(full)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        pg.create_estimator("hybrik", checkpoint=cut)
    with pytest.raises(ConfigError, match="resnet34, hrnet48"):
        HybrIK(warn=False, backbone="resnet50")


def test_posegen_checkpoint_round_trip(tmp_path, res34):
    path = tmp_path / "hybrik_posegen.pt"
    res34.save_checkpoint(path)
    again = pg.create_estimator("hybrik", checkpoint=path)
    assert again.input_size == 64 and again.backbone == "resnet34"
    res34.eval(), again.eval()
    x = small_images(1)
    with torch.no_grad():
        torch.testing.assert_close(res34(x).joints, again(x).joints)


def test_random_init_warns_loudly():
    with pytest.warns(UserWarning, match="RANDOM weights"):
        HybrIK(input_size=64)


# --------------------------------------------------------------------------------------------------- IK
def random_pose(b: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Plausible poses: joint rotations of about 0.4 rad, any root orientation. (B, 24, 3, 3)."""
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(b, 24, 3, generator=g, dtype=dtype) * 0.4
    aa[:, 0] = torch.randn(b, 3, generator=g, dtype=dtype) * 1.5
    return pg.rotations.axis_angle_to_matrix(aa)


def true_twists(rots: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Swing-twist split by quaternions (independent of the IK code): twist angle of each local rotation about the
    rest bone towards the swing child; returns (B, 23, 2) (cos, sin)."""
    rest = rest.expand(rots.shape[0], -1, -1) if rest.dim() == 2 else rest
    out = []
    for i in range(1, 24):
        axis = rest[:, ik.SWING_CHILD[i]] - rest[:, i]
        axis = axis / axis.norm(dim=-1, keepdim=True)
        q = pg.rotations.matrix_to_quaternion(rots[:, i])
        angle = 2 * torch.atan2((q[:, 1:] * axis).sum(-1), q[:, 0])
        out.append(torch.stack([angle.cos(), angle.sin()], -1))
    return torch.stack(out, 1)


@pytest.mark.parametrize("naive", [False, True])
def test_ik_on_true_joints_and_twists_recovers_the_pose(naive):
    rest = ik.skeleton_rest_joints29(torch.float64)
    rots = random_pose(32, seed=0)
    joints, _ = ik.forward_kinematics29(rots, rest)
    out = ik.inverse_kinematics(joints, true_twists(rots, rest) * 3.0, rest, naive=naive)  # phi of any norm
    again, _ = ik.forward_kinematics29(out.rotations, rest)
    # The naive root is the official batch_get_pelvis_orient: its hips' mean lies almost along the spine and its
    # 1e-8 guards leave ~1e-6 of that ill-conditioning even in float64.
    tol = 1e-5 if naive else 1e-10
    torch.testing.assert_close(again, joints, atol=tol, rtol=0)
    torch.testing.assert_close(out.rotations, rots, atol=tol, rtol=0)  # unique given the twists


def test_ik_with_a_shaped_smpl_rest_skeleton(tmp_path):
    rest0 = ik.skeleton_rest_joints29(torch.float64)
    leaves = {v: tuple(rest0[24 + k].tolist()) for k, v in enumerate(ik.LEAF_VERTICES)}
    body = pg.SMPLBody(write_synthetic_smpl(tmp_path / "SMPL_NEUTRAL.npz", leaves=leaves))
    smpl = body.smpl
    betas = torch.randn(4, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    rest = ik.smpl_rest_joints29(smpl.v_template.double(), smpl.shapedirs.double(), smpl.J_regressor.double(), betas)
    # The shaped rest joints are smplx's joints for these betas in the rest pose.
    eye = torch.eye(3).expand(4, 24, 3, 3)
    at_rest = body.forward_rotmats(eye, betas.float()).joints
    torch.testing.assert_close(rest[:, :24].float(), at_rest, atol=1e-5, rtol=0)
    rots = random_pose(4, seed=6)
    joints, _ = ik.forward_kinematics29(rots, rest)
    out = ik.inverse_kinematics(joints, true_twists(rots, rest), rest)
    torch.testing.assert_close(out.rotations, rots, atol=1e-9, rtol=0)
    # And smplx posing with the recovered rotations lands on the same 24 joints.
    posed = body.forward_rotmats(out.rotations.float(), betas.float()).joints
    torch.testing.assert_close(posed, (joints - joints[:, :1])[:, :24].float(), atol=1e-4, rtol=0)


def test_naive_ik_ignores_bone_lengths():
    rest = ik.skeleton_rest_joints29(torch.float64)
    rots = random_pose(8, seed=7)
    joints, _ = ik.forward_kinematics29(rots, rest * 1.15)  # a bigger person than the rest skeleton
    out = ik.inverse_kinematics(joints, true_twists(rots, rest), rest, naive=True)
    torch.testing.assert_close(out.rotations, rots, atol=1e-4, rtol=0)  # official pelvis orient: see above


def test_ik_output_is_a_rotation_for_noisy_joints():
    rest = ik.skeleton_rest_joints29(torch.float64)
    rots = random_pose(8, seed=8)
    joints, _ = ik.forward_kinematics29(rots, rest)
    noisy = joints + torch.randn(joints.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 0.03
    r = ik.inverse_kinematics(noisy, true_twists(rots, rest), rest).rotations
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(r.shape[:2], dtype=torch.float64))


def test_swing_handles_opposite_and_equal_directions():
    a = torch.tensor([[0.0, 1.0, 0.0], [0.3, 0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, -2.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    r = ik.swing_rotation(a, b)
    torch.testing.assert_close((r @ a[..., None])[..., 0], torch.tensor([[0.0, -1.0, 0.0], [0.3, 0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------------------------------- heads by hand
def test_soft_argmax_by_hand():
    logits = torch.full((1, 2 * 8, 4, 4), -1e4)
    logits[0, 3, 1, 2] = 0.0  # joint 0: depth bin 3, y 1, x 2
    logits[0, 8:] = 0.0  # joint 1: uniform
    uvd, maxvals = soft_argmax_3d(logits, num_joints=2)
    torch.testing.assert_close(uvd[0, 0], torch.tensor([2 / 4 - 0.5, 1 / 4 - 0.5, 3 / 8 - 0.5]))
    torch.testing.assert_close(uvd[0, 1], torch.tensor([1.5 / 4 - 0.5, 1.5 / 4 - 0.5, 3.5 / 8 - 0.5]))
    torch.testing.assert_close(maxvals[0], torch.tensor([1.0, 1.0 / 128]))


def test_back_projection_by_hand():
    """HybrIK's formula: x = u 256 / f (2.2 d + D) - t (t: the ResNet-34 camera translation, subtracted after
    scaling, so root-relative joints do not depend on it); with a box, u is shifted by the box centre's offset."""
    uvd = torch.tensor([[[0.0, 0.0, 0.0], [0.1, -0.05, 0.1]]])
    scale = torch.tensor([[0.9]])
    xyz, root = HybrIK.back_project(uvd, scale, torch.zeros(1, 2))
    depth_root = FOCAL_LENGTH / (INPUT_SIZE * 0.9)
    z1 = depth_root + 0.1 * DEPTH_FACTOR
    expected = torch.tensor([0.1 * 0.256 * z1, -0.05 * 0.256 * z1, 0.1 * DEPTH_FACTOR])
    torch.testing.assert_close(xyz[0, 1], expected)
    torch.testing.assert_close(xyz[0, 0], torch.zeros(3))
    torch.testing.assert_close(root[0], torch.tensor([0.0, 0.0, depth_root]))
    t = torch.tensor([[0.1, -0.05]])
    shifted, root_t = HybrIK.back_project(uvd, scale, t)  # ResNet-34 camera translation
    torch.testing.assert_close(shifted, xyz)
    torch.testing.assert_close(root_t[0], torch.tensor([-0.1, 0.05, depth_root]))
    # The pre-fix formula (u - t) 256 / f z would have moved joint 1 relative to the root:
    wrong = (uvd[0, 1, :2] - t[0]) * 0.256 * z1 - (uvd[0, 0, :2] - t[0]) * 0.256 * depth_root
    assert (wrong - expected[:2]).abs().max() > 1e-3
    box = torch.tensor([[0.02, 0.03]])  # box centre offset from the image centre, in box sizes
    boxed, root_b = HybrIK.back_project(uvd, scale, t, bbox_center=box)  # t is ignored with a box
    torch.testing.assert_close(boxed[0, 1], torch.tensor([0.12 * 0.256 * z1 - 0.02 * 0.256 * depth_root,
                                                          -0.02 * 0.256 * z1 - 0.03 * 0.256 * depth_root,
                                                          0.1 * DEPTH_FACTOR]))
    torch.testing.assert_close(root_b[0], torch.tensor([0.02 * 0.256 * depth_root, 0.03 * 0.256 * depth_root,
                                                        depth_root]))
    centre = HybrIK.box_center(torch.tensor([[100.0, 50.0, 300.0, 250.0]]), torch.tensor([[180.0, 140.0]]))
    torch.testing.assert_close(centre, torch.tensor([[(200.0 - 180.0) / 200.0, (150.0 - 140.0) / 200.0]]))


def test_scale_refinement_keeps_the_true_scale_and_improves_a_wrong_one(res34):
    """HRNet's update_scale on a synthetic perspective view (root off the optical axis): the true scale is a
    fixed point and a wrong one moves towards it."""
    rest = ik.skeleton_rest_joints29()
    rots = random_pose(3, seed=10, dtype=torch.float32)
    rots[:, 0] = pg.camera.frontal_rotation() @ rots[:, 0]  # roughly facing the camera
    posed, _ = ik.forward_kinematics29(rots, rest)
    posed = posed - posed[:, :1]
    s_true = torch.tensor([[0.8], [1.0], [1.2]])
    depth = FOCAL_LENGTH / (INPUT_SIZE * s_true)
    absolute = posed + torch.cat([torch.tensor([[0.1, -0.05]]).expand(3, 2) * depth, depth], -1)[:, None]
    uv = absolute[..., :2] / absolute[..., 2:] * (FOCAL_LENGTH / INPUT_SIZE)
    uvd = torch.cat([uv, posed[..., 2:] / DEPTH_FACTOR], -1)
    phi = true_twists(rots.double(), rest.double()).float()
    sigma = torch.zeros(3, 29)
    torch.testing.assert_close(HybrIK.back_project(uvd, s_true)[0], posed, atol=1e-5, rtol=0)
    kept = res34.refined_scale(uvd, phi, rest.expand(3, -1, -1), s_true, sigma)
    torch.testing.assert_close(kept, s_true, atol=1e-4, rtol=0)
    wrong = s_true * 1.3
    better = res34.refined_scale(uvd, phi, rest.expand(3, -1, -1), wrong, sigma)
    assert ((better - s_true).abs() < (wrong - s_true).abs()).all()
    # Every weight zero (sigma >= 0.1 everywhere): the official fit is singular and the batch keeps its scale.
    torch.testing.assert_close(res34.refined_scale(uvd, phi, rest.expand(3, -1, -1), wrong, sigma + 0.5), wrong)


def test_scale_refinement_only_where_the_official_model_has_it(res34, hrnet):
    assert res34.refine_scale is False  # official ResNet-34 (Simple3DPoseBaseSMPLCam): no update_scale
    assert hrnet.refine_scale is True  # official HRNetSMPLCam refines in eval mode
    assert HybrIK(backbone="resnet34", refine_scale=True, warn=False).refine_scale is True  # explicit wins


def test_preprocessing_uses_hybriks_bgr_constants_on_rgb():
    est = HybrIK.__new__(HybrIK)  # preprocessing only needs the options
    est.input_size, est.crop_scale = 256, 1.0
    colour = torch.tensor([0.2, 0.5, 0.9])
    x = HybrIK.preprocess(est, colour.view(1, 3, 1, 1).expand(1, 3, 64, 128).clone())
    assert x.shape == (1, 3, 256, 256)
    expected = (colour - torch.tensor(NORM_MEAN)) / torch.tensor(NORM_STD)
    torch.testing.assert_close(x[0, :, 128, 100], expected)  # inside the image (rows 64..191 after padding)
    torch.testing.assert_close(x[0, :, 10, 100], -torch.tensor(NORM_MEAN) / torch.tensor(NORM_STD))
    assert NORM_MEAN == (0.406, 0.457, 0.480) and NORM_STD == (0.225, 0.224, 0.229)


# --------------------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("which", ["res34", "hrnet"])
def test_forward_outputs_follow_the_contract(which, request):
    est = request.getfixturevalue(which).eval()
    with torch.no_grad():
        out = est(small_images(2, 50, 70))
    assert out.joints.shape == (2, 24, 3) and out.native_joints.shape == (2, 29, 3)
    torch.testing.assert_close(out.joints[:, 0], torch.zeros(2, 3))
    # Joints are the skeleton posed by the returned rotations (independent FK).
    posed, _ = pg.kinematics.batch_rigid_transform(out.rotations, pg.skeleton.rest_joints())
    torch.testing.assert_close(out.joints, posed - posed[:, :1], atol=1e-5, rtol=0)
    eye = torch.eye(3).expand_as(out.rotations)
    torch.testing.assert_close(out.rotations @ out.rotations.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    assert out.camera.shape == ((2, 3) if which == "res34" else (2, 1)) and out.betas.shape == (2, 10)


def test_smpl_path(tmp_path):
    rest0 = ik.skeleton_rest_joints29()
    leaves = {v: tuple(rest0[24 + k].tolist()) for k, v in enumerate(ik.LEAF_VERTICES)}
    smpl = write_synthetic_smpl(tmp_path / "SMPL_NEUTRAL.npz", leaves=leaves)
    est = HybrIK(warn=False, input_size=64, smpl_model=smpl).eval()
    with torch.no_grad():
        out = est(small_images(2))
        expected = pg.SMPLBody(smpl).forward_rotmats(out.rotations, out.betas).joints
    torch.testing.assert_close(out.joints, expected)
    assert out.extras["vertices"].shape == (2, 6890, 3)
    with pytest.raises(ConfigError, match="SMPL model file not found"):
        HybrIK(warn=False, smpl_model=tmp_path / "missing.pkl")


@pytest.mark.parametrize("which", ["res34", "hrnet"])
def test_two_step_finetune(which, request):
    est = request.getfixturevalue(which)  # last tests of the module: training the shared fixtures is harmless
    est.freeze_bn, est.scale_align, est.input_size = True, True, 32
    est.train()
    stats = next(m for m in est.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_mean.clone()
    opt = torch.optim.SGD(est.parameters(), lr=1e-3)
    target = pg.camera.root_relative(torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(11)) * 0.3)
    before = est.decphi.weight.detach().clone()
    for step in range(2):
        torch.manual_seed(step)  # dropout draws from the global generator
        loss = est.joint_loss(est(small_images(2, 32, 32, seed=step)), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert torch.equal(next(m for m in est.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_mean, stats)
    assert not torch.equal(est.decphi.weight, before)  # the twist head learns through the posed joints


def test_ik_is_differentiable_in_joints_and_twists():
    # The feedback loop can back-propagate through a frozen estimator: the eval-mode IK must have exact gradients.
    rest = ik.skeleton_rest_joints29(torch.float64)
    rots = random_pose(1, seed=12)
    joints, _ = ik.forward_kinematics29(rots, rest)
    phis = true_twists(rots, rest)
    joints.requires_grad_(True)
    phis.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda j, p: ik.inverse_kinematics(j, p, rest, fallback_distance=1.0).rotations, (joints, phis), atol=1e-6,
        fast_mode=True,
    )


# --------------------------------------------------------------------------------------------------- flip test
PAIRS_29 = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26), (27, 28))


def test_flip_test_averages_the_mirrored_prediction_as_hybrik_does(res34):
    """flip_test=True, computed by hand from the two forward passes (HybrIK's flip_heatmap / flip_phi / flip_sigma
    and the camera rule of each backbone), independently of the plugin's helpers."""
    est = res34.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    est.flip_test = True
    try:
        with torch.no_grad():
            got = est.network(x)
            mirrored = est.network(x.flip(3))["uvd"]
            logits, xc = est.heads(x)
            f_logits, f_xc = est.heads(x.flip(3))
    finally:
        est.flip_test = False
    b, hw = 2, logits.shape[-1]
    f = f_logits.reshape(b, 29, 64, hw, hw).flip(4).clone()
    for a, c in PAIRS_29:
        f[:, [a, c]] = f[:, [c, a]].clone()
    shifted = f.clone()
    shifted[..., 1:] = f[..., :-1]
    hm = 0.5 * (logits.reshape(b, 29, -1).softmax(-1) + shifted.reshape(b, 29, -1).softmax(-1))
    hm = hm.reshape(b, 29, 64, hw, hw)
    ar = torch.arange(hw, dtype=torch.float32)
    u = (hm.sum((2, 3)) * ar).sum(-1) / hw - 0.5
    torch.testing.assert_close(got["uvd"][..., 0], u)
    phi, f_phi = est.decphi(xc).view(b, 23, 2), est.decphi(f_xc).view(b, 23, 2).clone()
    f_phi[..., 1] = -f_phi[..., 1]
    for a, c in PAIRS_29[:9]:
        f_phi[:, [a - 1, c - 1]] = f_phi[:, [c - 1, a - 1]].clone()
    torch.testing.assert_close(got["phi"], 0.5 * (phi + f_phi))
    cam, f_cam = est.deccam(xc) + est.init_cam, est.deccam(f_xc) + est.init_cam
    f_cam[:, 1] = -f_cam[:, 1]  # ResNet-34: tx mirrored, arithmetic mean
    torch.testing.assert_close(got["camera"], 0.5 * (cam + f_cam))
    sig, f_sig = est.decsigma(xc).sigmoid(), est.decsigma(f_xc).sigmoid().clone()
    for a, c in PAIRS_29:
        f_sig[:, [a, c]] = f_sig[:, [c, a]].clone()
    torch.testing.assert_close(got["sigma"], 0.5 * (sig + f_sig))
    # Mirroring the input mirrors the flip-tested u about -1/(2 W) (bin k sits at k / W - 0.5, its mirror at
    # (W - 1 - k) / W - 0.5), up to the one-bin edge of the shift: a symmetric estimate.
    swap = list(range(29))
    for a, c in PAIRS_29:
        swap[a], swap[c] = c, a
    assert (mirrored[:, swap, 0] + got["uvd"][..., 0] + 1.0 / hw).abs().max() < 0.01


def test_flip_test_is_an_option_saved_with_the_estimator(res34, tmp_path):
    assert res34.flip_test is False  # off by default (it doubles the cost)
    est = HybrIK(warn=False, input_size=64, flip_test=True)
    assert est.options()["flip_test"] is True
    est.save_checkpoint(tmp_path / "flip.pt")
    assert pg.create_estimator("hybrik", checkpoint=tmp_path / "flip.pt").flip_test is True
