"""The camera convention (OpenCV frame, viewpoint K), intrinsics and projection."""

from __future__ import annotations

import math

import pytest
import torch

import posegen_core as pg
from posegen_core import skeleton
from posegen_core.camera import Intrinsics, project, to_camera_frame, viewpoint_rotation
from posegen_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

HEAD, LEFT_HAND, RIGHT_HAND, LEFT_ANKLE, RIGHT_ANKLE = 15, 22, 23, 7, 8


def rest_pose(b: int = 1, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    return pg.forward_kinematics(torch.zeros(b, 3, dtype=dtype), torch.zeros(b, 23, 3, dtype=dtype))


def view(k: tuple[float, float, float], distance: float = 4.0):
    joints, rots = rest_pose()
    return to_camera_frame(joints, rots, torch.tensor([k], dtype=torch.float64), distance)


def test_frontal_view_left_on_image_right_and_head_up():
    cam, _ = view((0.0, 0.0, 0.0))
    intr = Intrinsics.framing(256)
    uv = project(cam, intr)[0]
    assert uv[LEFT_HAND, 0] > intr.cx > uv[RIGHT_HAND, 0], "the subject faces the camera: their left is image right"
    assert uv[HEAD, 1] < intr.cy < uv[LEFT_ANKLE, 1], "head up (small v), feet down"
    # Frontal: the subject's front (the toes, +z in the body frame) points at the camera.
    assert cam[0, 10, 2] < cam[0, LEFT_ANKLE, 2]


def test_frontal_view_puts_the_root_on_the_optical_axis_at_the_distance():
    for d in (2.5, 4.0):
        cam, _ = view((0.3, -0.7, 0.1), distance=d)
        torch.testing.assert_close(cam[0, 0], torch.tensor([0.0, 0.0, d], dtype=torch.float64))
    intr = Intrinsics.framing(128)
    torch.testing.assert_close(project(view((0, 0, 0))[0], intr)[0, 0], torch.tensor([64.0, 64.0], dtype=torch.float64))


def test_top_view_brings_the_head_nearer_the_camera():
    front, _ = view((0.0, 0.0, 0.0))
    top, _ = view((math.pi / 2, 0.0, 0.0))
    assert top[0, HEAD, 2] < top[0, 0, 2] < top[0, LEFT_ANKLE, 2], "looking down on the head"
    # The body's vertical axis is now the optical axis: head and ankles nearly on the same image row.
    assert abs(top[0, HEAD, 1] - top[0, LEFT_ANKLE, 1]) < 0.2 < abs(front[0, HEAD, 1] - front[0, LEFT_ANKLE, 1])
    # Left/right stay on the same image side when the camera tips over the head.
    assert top[0, LEFT_HAND, 0] > 0 > top[0, RIGHT_HAND, 0]
    bottom, _ = view((-math.pi / 2, 0.0, 0.0))
    assert bottom[0, LEFT_ANKLE, 2] < bottom[0, 0, 2] < bottom[0, HEAD, 2], "a bottom view sees the feet first"


def test_side_view_turns_the_subjects_left_towards_the_camera():
    side, _ = view((0.0, math.pi / 2, 0.0))
    assert side[0, LEFT_HAND, 2] < side[0, 0, 2] < side[0, RIGHT_HAND, 2]


def test_camera_frame_equals_fk_with_the_viewpoint_folded_into_the_root():
    """x_cam = R_K F (x_body - root) + (0, 0, d) and R_cam = R_K F R_body, with F the frontal half turn."""
    g = torch.Generator().manual_seed(0)
    go = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.5
    bp = torch.randn(5, 23, 3, generator=g, dtype=torch.float64) * 0.5
    k = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.8
    joints, rots = pg.forward_kinematics(go, bp)
    joints = joints + torch.tensor([0.3, 1.0, -2.0], dtype=torch.float64)  # any root position
    dist = torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    cam, cam_rots = to_camera_frame(joints, rots, k, dist)
    r = viewpoint_rotation(k)
    folded = matrix_to_axis_angle(r @ axis_angle_to_matrix(go))
    expected, expected_rots = pg.forward_kinematics(folded, bp)
    expected = expected + torch.stack([torch.zeros(5), torch.zeros(5), dist], -1)[:, None].double()
    torch.testing.assert_close(cam, expected)
    torch.testing.assert_close(cam_rots, expected_rots)
    # The viewpoint is a proper rotation.
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(5, dtype=torch.float64))


def test_root_relative_subtracts_the_pelvis():
    cam, _ = view((0.2, 0.4, 0.0))
    rel = pg.root_relative(cam)
    torch.testing.assert_close(rel[:, 0], torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(rel + cam[:, :1], cam)


def test_project_matches_the_intrinsic_matrix():
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(4, 24, 3, generator=g, dtype=torch.float64)
    pts[..., 2] = pts[..., 2].abs() + 1.0
    intr = Intrinsics(500.0, 480.0, 100.0, 90.0, 180, 200)
    homog = pts @ intr.matrix(torch.float64).T
    torch.testing.assert_close(project(pts, intr), homog[..., :2] / homog[..., 2:])


def test_framing_spans_the_requested_extent():
    intr = Intrinsics.framing(200, distance=4.0, extent=2.2)
    edge = project(torch.tensor([[1.1, -1.1, 4.0]]), intr)
    torch.testing.assert_close(edge, torch.tensor([[200.0, 0.0]]))
    wide = Intrinsics.framing((100, 300))
    assert (wide.height, wide.width, wide.cx, wide.cy) == (100, 300, 150.0, 50.0)
    assert wide.fx == wide.fy == 100 * 4.0 / 2.2


def test_scaled_intrinsics_scale_the_projection():
    intr = Intrinsics.framing(128)
    pts = view((0.1, 0.2, 0.3))[0]
    half = intr.scaled(0.5)
    assert (half.height, half.width) == (64, 64)
    torch.testing.assert_close(project(pts, half), project(pts, intr) * 0.5)


@pytest.mark.parametrize("fx,fy", [(0.0, 100.0), (100.0, -1.0), (float("nan"), 100.0)])
def test_intrinsics_reject_non_positive_focal(fx, fy):
    with pytest.raises(pg.PosegenError, match="focal lengths must be positive"):
        Intrinsics(fx, fy, 32.0, 32.0, 64, 64)


def test_intrinsics_reject_empty_images():
    with pytest.raises(pg.PosegenError, match="image size must be positive"):
        Intrinsics(100.0, 100.0, 32.0, 32.0, 0, 64)


def test_camera_inputs_are_shape_checked():
    joints, rots = rest_pose(2)
    with pytest.raises(pg.ShapeError, match=r"viewpoint must have shape \(B, 3\); got \(2, 4\)"):
        to_camera_frame(joints, rots, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(pg.ShapeError, match=r"viewpoint has 1 samples for 2 skeletons"):
        to_camera_frame(joints, rots, torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(pg.ShapeError, match=r"rotations must have shape \(2, 24, 3, 3\)"):
        to_camera_frame(joints, rots[:, :, :2], torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(pg.ShapeError, match=r"joints must have shape \(B, \*, 3\); got \(2, 72\)"):
        to_camera_frame(joints.reshape(2, 72), rots, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(pg.ShapeError, match=r"\(B, 3\)"):
        viewpoint_rotation(torch.zeros(3))


def test_gradcheck_to_camera_frame():
    g = torch.Generator().manual_seed(2)
    joints = torch.randn(2, 24, 3, generator=g, dtype=torch.float64, requires_grad=True)
    rots = axis_angle_to_matrix(torch.randn(2, 24, 3, generator=g, dtype=torch.float64)).requires_grad_()
    k = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    dist = torch.tensor([3.0, 4.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: to_camera_frame(a, b, c, d), (joints, rots, k, dist), fast_mode=True
    )


def test_gradcheck_project():
    g = torch.Generator().manual_seed(3)
    pts = torch.randn(3, 24, 3, generator=g, dtype=torch.float64)
    pts[..., 2] = pts[..., 2].abs() + 2.0
    intr = Intrinsics.framing(64)
    assert torch.autograd.gradcheck(lambda p: project(p, intr), (pts.requires_grad_(),))


def test_skeleton_fits_in_the_default_framing():
    """The default framing shows a T-posed subject (arms out) whole from any of the canonical views."""
    intr = Intrinsics.framing(64)
    for k in [(0, 0, 0), (math.pi / 2, 0, 0), (0, math.pi / 2, 0), (0, math.pi, 0)]:
        uv = project(view(k)[0], intr)
        assert bool(((uv >= 0) & (uv <= 64)).all()), k
    assert skeleton.NUM_JOINTS == 24


def test_viewpoint_as_matrix_matches_axis_angle_and_angles_round_trip():
    from posegen_core.camera import rotation_from_angles, viewpoint_angles, viewpoint_from_angles

    joints, rots = rest_pose(4)
    g = torch.Generator().manual_seed(5)
    k = torch.randn(4, 3, generator=g, dtype=torch.float64)
    a = to_camera_frame(joints, rots, k)
    b = to_camera_frame(joints, rots, pg.rotations.axis_angle_to_matrix(k))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    elev = torch.tensor([0.0, 0.7, -1.2, 0.3], dtype=torch.float64)
    azim = torch.tensor([0.0, 2.5, -0.4, -3.0], dtype=torch.float64)
    e, z = viewpoint_angles(viewpoint_from_angles(elev, azim))
    torch.testing.assert_close(e, elev)
    torch.testing.assert_close(z, azim)
    e2, _ = viewpoint_angles(rotation_from_angles(elev, azim))
    torch.testing.assert_close(e2, elev)


def test_scene_rotations_pose_the_body_into_the_scene_joints():
    """SceneBatch.rotations (the estimator's rotation targets) reproduce the camera-frame joints through FK."""
    from posegen_core.rotations import matrix_to_axis_angle
    from posegen_core.scene import render_scene

    g = torch.Generator().manual_seed(0)
    go, bp, k = torch.randn(4, 3, generator=g) * 0.5, torch.randn(4, 23, 3, generator=g) * 0.3, torch.randn(4, 3, generator=g)
    scene = render_scene(pg.create_renderer("primitives"), pg.SkeletonBody(), pg.Intrinsics.framing(32, 4.0),
                         go, bp, k, 4.0, 0, g)
    rot = scene.rotations
    joints, _ = pg.forward_kinematics(matrix_to_axis_angle(rot[:, 0]), matrix_to_axis_angle(rot[:, 1:]))
    torch.testing.assert_close(joints - joints[:, :1], scene.joints, atol=1e-5, rtol=0)
