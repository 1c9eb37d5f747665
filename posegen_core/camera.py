"""Cameras: viewpoint K -> camera-frame skeleton, intrinsics, projection.

Frames: the body (world) frame is SMPL's (y up, subject's left +x, facing +z). The camera frame is OpenCV's
(x right, y down, z forward). The viewpoint K is an axis-angle rotation *in the camera frame* of the subject about
its root: K = 0 is the frontal view (optical axis horizontal, through the pelvis, camera in front of the subject);
K = (pi/2, 0, 0) tips the head towards the camera, i.e. a top view; K = (-pi/2, 0, 0) a bottom view;
K = (0, pi/2, 0) shows the subject's side. Equivalently the camera orbits the root by K^T.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ShapeError
from .rotations import axis_angle_to_matrix
from .validation import check_tensor

#: Body frame -> frontal camera frame: a half turn about x (y up -> y down, facing +z -> facing the camera).
FRONTAL = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def frontal_rotation(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    return torch.tensor(FRONTAL, dtype=dtype, device=device)


def viewpoint_rotation(viewpoint: torch.Tensor) -> torch.Tensor:
    """K -> R (B, 3, 3) with x_cam = R @ (x_body - root) + t.

    K is (B, 3) axis-angle, or (B, 3, 3) its rotation matrix (smooth everywhere, which matters for gradients: the
    axis-angle form jumps at half turns).
    """
    if isinstance(viewpoint, torch.Tensor) and viewpoint.dim() == 3:
        check_tensor(viewpoint, "viewpoint", (None, 3, 3), hint="K is (B, 3) axis-angle or (B, 3, 3) rotations.")
        rk = viewpoint
    else:
        check_tensor(viewpoint, "viewpoint", (None, 3), hint="K is one axis-angle vector (or 3x3 rotation) per sample.")
        rk = axis_angle_to_matrix(viewpoint)
    return rk @ frontal_rotation(viewpoint.dtype, viewpoint.device)


def to_camera_frame(
    joints: torch.Tensor,
    rotations: torch.Tensor,
    viewpoint: torch.Tensor,
    distance: float | torch.Tensor = 4.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place a body-frame skeleton in front of the camera seen from viewpoint K.

    Args:
        joints: (B, 24, 3) body-frame joints (any root position).
        rotations: (B, 24, 3, 3) body-frame global joint rotations.
        viewpoint: (B, 3) axis-angle K, or (B, 3, 3) its rotation matrix.
        distance: metres from the camera centre to the root, along the optical axis.

    Returns:
        camera-frame joints (B, 24, 3) with the root at (0, 0, distance) and camera-frame rotations (B, 24, 3, 3).
    """
    check_tensor(joints, "joints", (None, None, 3), hint="Body-frame joints, one (J, 3) set per sample.")
    check_tensor(rotations, "rotations", (joints.shape[0], joints.shape[1], 3, 3),
                 hint="One global rotation matrix per joint.")
    r = viewpoint_rotation(viewpoint)
    if r.shape[0] != joints.shape[0]:
        raise ShapeError(f"viewpoint has {r.shape[0]} samples for {joints.shape[0]} skeletons; pass one K per sample.")
    rel = joints - joints[:, :1]
    cam = torch.einsum("bij,bkj->bki", r, rel)
    offset = torch.zeros_like(cam[:, :1])
    offset[..., 2] = 1.0
    cam = cam + offset * (distance if not isinstance(distance, torch.Tensor) else distance.view(-1, 1, 1))
    return cam, r[:, None] @ rotations


def root_relative(joints: torch.Tensor) -> torch.Tensor:
    """Subtract the pelvis (joint 0): the ground-truth convention for feedback, training and metrics."""
    return joints - joints[..., :1, :]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``height`` x ``width``."""

    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ShapeError(f"focal lengths must be positive pixels; got fx={self.fx}, fy={self.fy}.")
        if self.height <= 0 or self.width <= 0:
            raise ShapeError(f"image size must be positive; got {self.height}x{self.width}.")

    @classmethod
    def framing(cls, image_size: int | tuple[int, int], distance: float = 4.0, extent: float = 2.2) -> "Intrinsics":
        """Intrinsics whose image spans ``extent`` metres at ``distance`` (default: a standing body with raised arms)."""
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        f = min(h, w) * distance / extent
        return cls(f, f, w / 2.0, h / 2.0, h, w)

    def scaled(self, factor: float) -> "Intrinsics":
        """The same camera for an image resized by ``factor``."""
        return Intrinsics(
            self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
            round(self.height * factor), round(self.width * factor),
        )

    def matrix(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )


def project(points: torch.Tensor, intrinsics: Intrinsics, min_depth: float = 1e-4) -> torch.Tensor:
    """Perspective projection of camera-frame points (..., 3) to pixels (..., 2) (pixel centres at +0.5)."""
    z = points[..., 2:].clamp_min(min_depth)
    uv = points[..., :2] / z
    return torch.stack([uv[..., 0] * intrinsics.fx + intrinsics.cx, uv[..., 1] * intrinsics.fy + intrinsics.cy], -1)


def rotation_from_angles(
    elevation: torch.Tensor, azimuth: torch.Tensor, roll: torch.Tensor | None = None
) -> torch.Tensor:
    """K as a rotation matrix (..., 3, 3) for a camera at ``elevation`` (radians; + looks down from above) and
    ``azimuth`` (radians; + turns the subject's left side towards the camera), with optional ``roll`` about the
    optical axis."""
    from .rotations import rotation_about_axis

    r = rotation_about_axis("x", elevation) @ rotation_about_axis("y", azimuth)
    return r if roll is None else rotation_about_axis("z", roll) @ r


def viewpoint_from_angles(
    elevation: torch.Tensor, azimuth: torch.Tensor, roll: torch.Tensor | None = None
) -> torch.Tensor:
    """Axis-angle K (..., 3) of ``rotation_from_angles``."""
    from .rotations import matrix_to_axis_angle

    return matrix_to_axis_angle(rotation_from_angles(elevation, azimuth, roll))


def camera_directions(viewpoint: torch.Tensor) -> torch.Tensor:
    """Unit vectors (..., 3) from the subject's root to the camera centre, in the upright body frame (y up, z front)."""
    r = viewpoint_rotation(viewpoint)  # x_cam = R x_body (+ t): the camera centre is at -R^T t in body coordinates
    return -r.transpose(-1, -2)[..., :, 2]


def viewpoint_angles(viewpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(elevation, azimuth) in radians of the camera seen from the subject: the direction of the camera centre in the
    subject's upright body frame. Elevation +pi/2 is straight above (a top view); azimuth 0 is in front."""
    to_cam = camera_directions(viewpoint)
    elevation = torch.asin(to_cam[..., 1].clamp(-1.0, 1.0))
    azimuth = torch.atan2(to_cam[..., 0], to_cam[..., 2])
    return elevation, azimuth
