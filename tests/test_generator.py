"""The generator G: output shapes, bounded viewpoints, theta-only mode, and K's axis-angle/matrix agreement."""

from __future__ import annotations

import math

import pytest
import torch

import posegen_core as pg
from posegen_core.camera import viewpoint_angles
from posegen_core.generator import PoseGenerator


@torch.no_grad()
def test_angles_mode_bounds_elevation_and_roll_and_agrees_with_axis_angle():
    torch.manual_seed(0)
    g = PoseGenerator(max_elevation=0.5, max_roll=0.1).eval()
    out = g(torch.randn(256, 32))
    assert out.body_pose.shape == (256, 23, 3) and out.viewpoint.shape == (256, 3)
    elev, _ = viewpoint_angles(out.view_rotation)
    assert float(elev.abs().max()) <= 0.5 + 1e-5
    torch.testing.assert_close(pg.rotations.axis_angle_to_matrix(out.viewpoint), out.view_rotation, atol=1e-5, rtol=0)
    # roll: the camera's x axis stays horizontal up to max_roll
    r = pg.camera.viewpoint_rotation(out.view_rotation)
    roll = torch.asin((r[:, 0] @ torch.tensor([0.0, 1.0, 0.0])).clamp(-1, 1))
    assert float(roll.abs().max()) <= 0.1 + 1e-5


@torch.no_grad()
def test_axis_angle_mode_bounds_each_component():
    torch.manual_seed(1)
    out = PoseGenerator(viewpoint_param="axis_angle", k_max=0.3).eval()(torch.randn(64, 32))
    assert float(out.viewpoint.abs().max()) <= 0.3


@torch.no_grad()
def test_theta_only_gives_the_frontal_view_and_initial_views_are_spread():
    torch.manual_seed(2)
    assert torch.equal(PoseGenerator(viewpoint=False)(torch.randn(8, 32)).viewpoint, torch.zeros(8, 3))
    elev, azim = viewpoint_angles(PoseGenerator().eval()(torch.randn(2000, 32)).view_rotation)
    assert float(elev.abs().max()) > math.radians(60)
    # untrained G is a random augmentation (the A2 ablation): views all around the subject, above and below
    quarters = torch.histc(azim, bins=4, min=-math.pi, max=math.pi) / len(azim)
    assert float(quarters.min()) > 0.15, quarters
    assert 0.3 < float((elev > 0).float().mean()) < 0.7


def test_unknown_viewpoint_parametrisation_is_refused():
    with pytest.raises(pg.ConfigError, match="viewpoint_param must be one of angles, axis_angle"):
        PoseGenerator(viewpoint_param="euler")

