"""From poses and viewpoints to (images, ground truth): the one path shared by pre-training, the loop, dataset
export and evaluation. Also the domains: source (chest-height) and novel (top/bottom/oblique) viewpoints, upright
root orientations, and take-level train/test splits."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .camera import Intrinsics, root_relative, to_camera_frame, viewpoint_from_angles, viewpoint_rotation
from .errors import DataError
from .interfaces import PoseSet, Renderer
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle, rotation_about_axis


@dataclass
class SceneBatch:
    images: torch.Tensor  # (B, 3, H, W)
    alpha: torch.Tensor  # (B, 1, H, W)
    joints: torch.Tensor  # (B, 24, 3) root-relative camera-frame ground truth X
    camera_joints: torch.Tensor  # (B, 24, 3) camera-frame joints (root at the camera distance)
    viewpoint: torch.Tensor  # (B, 3)
    rotations: torch.Tensor  # (B, 24, 3, 3) ground-truth local rotations, the root's in the camera frame

    def to(self, device: torch.device | str) -> "SceneBatch":
        return SceneBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def render_scene(
    renderer: Renderer,
    body_model: nn.Module,
    intrinsics: Intrinsics,
    global_orient: torch.Tensor,
    body_pose: torch.Tensor,
    viewpoint: torch.Tensor,
    distance: float = 4.0,
    subject: object = None,
    generator: torch.Generator | None = None,
) -> SceneBatch:
    """Pose the body, place it in front of the camera seen from K, render it; differentiable when the renderer is.
    Runs on the body model's device (inputs drawn on the CPU are moved there)."""
    dev = module_device(body_model)
    global_orient, body_pose, viewpoint = global_orient.to(dev), body_pose.to(dev), viewpoint.to(dev)
    body = body_model(global_orient, body_pose)
    cam_joints, cam_rots = to_camera_frame(body.joints, body.rotations, viewpoint, distance)
    out = renderer(cam_joints, cam_rots, intrinsics, subject=subject, generator=generator)
    return SceneBatch(out.images, out.alpha, root_relative(cam_joints), cam_joints, viewpoint,
                      camera_frame_rotations(global_orient, body_pose, viewpoint))


def camera_frame_rotations(global_orient: torch.Tensor, body_pose: torch.Tensor, viewpoint: torch.Tensor) -> torch.Tensor:
    """Local SMPL rotations (B, 24, 3, 3) with the root orientation expressed in the camera frame: what an estimator
    predicts as ``rotations``."""
    local = axis_angle_to_matrix(torch.cat([global_orient[:, None], body_pose], 1))
    root = viewpoint_rotation(viewpoint) @ local[:, 0]
    return torch.cat([root[:, None], local[:, 1:]], 1)


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters (or buffers) live; cpu for one that has none."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def remove_heading(global_orient: torch.Tensor) -> torch.Tensor:
    """Keep a mocap root orientation's tilt but drop its heading (rotation about the vertical y axis): the camera's
    azimuth then decides which side of the subject is seen."""
    r = axis_angle_to_matrix(global_orient)
    fwd = r[..., :, 2]  # where the body's +z (facing) points
    yaw = torch.atan2(fwd[..., 0], fwd[..., 2])
    return matrix_to_axis_angle(rotation_about_axis("y", -yaw) @ r)


def source_viewpoints(n: int, generator: torch.Generator, max_elevation_deg: float = 10.0) -> torch.Tensor:
    """Chest-height cameras all around the subject (as in Human3.6M): elevation within +-10 deg, any azimuth."""
    elev = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_elevation_deg)
    azim = (torch.rand(n, generator=generator) * 2 - 1) * math.pi
    return viewpoint_from_angles(elev, azim)


def novel_viewpoints(
    n: int, generator: torch.Generator, min_elevation_deg: float = 35.0, max_elevation_deg: float = 80.0
) -> torch.Tensor:
    """Top, bottom and oblique cameras never seen in the source domain: |elevation| in [35, 80] deg, any azimuth."""
    mag = math.radians(min_elevation_deg) + torch.rand(n, generator=generator) * math.radians(
        max_elevation_deg - min_elevation_deg
    )
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    azim = (torch.rand(n, generator=generator) * 2 - 1) * math.pi
    return viewpoint_from_angles(mag * sign, azim)


@dataclass
class PoseSplit:
    train: PoseSet
    test: PoseSet

    def check_disjoint(self) -> None:
        """No test take may reach generation, the discriminator or fine-tuning."""
        overlap = set(self.train.take_names[i] for i in np.unique(self.train.take)) & set(
            self.test.take_names[i] for i in np.unique(self.test.take)
        )
        if overlap:
            raise DataError(f"train and test splits share takes: {sorted(overlap)[:5]}")


def split_by_take(poses: PoseSet, test_fraction: float, seed: int) -> PoseSplit:
    """Hold out whole takes (never frames of a take seen in training) for evaluation."""
    used = np.unique(poses.take)
    if len(poses) == 0:
        raise DataError("the pose source is empty: it yielded no poses. Check its path and filters.")
    if len(used) < 2:
        raise DataError(
            f"the pose source has {len(used)} take(s); a take-level train/test split needs at least 2. "
            "Add takes, or pass a pose source with more of them."
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(used)
    n_test = min(max(1, int(round(len(used) * test_fraction))), len(used) - 1)
    test_takes = np.sort(order[:n_test])
    is_test = np.isin(poses.take, test_takes)
    split = PoseSplit(poses.subset(np.flatnonzero(~is_test)), poses.subset(np.flatnonzero(is_test)))
    split.check_disjoint()
    return split


def sample_poses(poses: PoseSet, n: int, generator: torch.Generator, upright: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """n random frames (global_orient, body_pose) drawn with ``generator``; heading removed when ``upright``."""
    idx = torch.randint(len(poses), (n,), generator=generator)
    go = poses.global_orient[idx]
    return (remove_heading(go) if upright else go), poses.body_pose[idx]
