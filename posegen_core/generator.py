"""The generator G: latent z -> body pose theta (23 joints, axis-angle) and camera viewpoint K (axis-angle).

The pose trunk follows the official code's BAGenerator (Linear 256 + BatchNorm + LeakyReLU, two stages of two such
layers, a per-joint (axis, angle) decode). K is always returned as an axis-angle vector (the contract); G's view head
parametrises it in one of two ways:

- ``"angles"`` (default): camera elevation in [-max_elevation, max_elevation], azimuth as the angle of a 2-vector (it
  wraps around the subject, with no seam behind it; uniform at initialisation) and a small roll in [-max_roll, max_roll],
  converted to K. Cameras look at people upright or from above/below, rarely rolled upside down.
- ``"axis_angle"`` (the paper's literal K): ``k_max * tanh`` per component, which reaches every rotation.

With ``viewpoint=False`` G generates theta only (the paper's A1 ablation) and K is always 0.

With ``shape_dim > 0`` G also generates body shape, the paper's stated limitation (one rendered subject): a
(B, shape_dim) vector in [0, 1] (sigmoid) from its own small network, which the renderer takes as ``subject``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .camera import rotation_from_angles
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .errors import ConfigError
from .skeleton import NUM_BODY_JOINTS

VIEWPOINT_PARAMS = ("angles", "axis_angle")


@dataclass
class GeneratorOutput:
    body_pose: torch.Tensor  # (B, 23, 3)
    viewpoint: torch.Tensor  # (B, 3) axis-angle K
    view_rotation: torch.Tensor  # (B, 3, 3) the same K as a matrix: use it for gradients (smooth at half turns)
    shape: torch.Tensor | None = None  # (B, shape_dim) body shape in [0, 1]; None when G generates no shape


def generated_shape_dim(generate_shape: bool, renderer: object) -> int:
    """The size of G's body-shape output: the renderer's ``shape_dim`` with ``generate_shape``, else 0."""
    return int(getattr(renderer, "shape_dim", 0)) if generate_shape else 0


def _block(i: int, o: int) -> list[nn.Module]:
    return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.LeakyReLU(0.01)]


class PoseGenerator(nn.Module):
    def __init__(
        self, latent_dim: int = 32, hidden: int = 256, stages: int = 2, viewpoint: bool = True,
        viewpoint_param: str = "angles", k_max: float = torch.pi, max_elevation: float = torch.pi / 2,
        max_roll: float = 0.25, shape_dim: int = 0,
    ) -> None:
        super().__init__()
        if viewpoint_param not in VIEWPOINT_PARAMS:
            raise ConfigError(f"viewpoint_param must be one of {', '.join(VIEWPOINT_PARAMS)}; got '{viewpoint_param}'.")
        if not (isinstance(shape_dim, int) and shape_dim >= 0):
            raise ConfigError(f"shape_dim must be a non-negative integer; got {shape_dim!r}.")
        self.latent_dim = latent_dim
        self.shape_dim = shape_dim
        self.viewpoint = viewpoint
        self.viewpoint_param = viewpoint_param
        self.k_max, self.max_elevation, self.max_roll = float(k_max), float(max_elevation), float(max_roll)
        layers = _block(latent_dim, hidden)
        for _ in range(stages):
            layers += _block(hidden, hidden) + _block(hidden, hidden)
        self.trunk = nn.Sequential(*layers)
        self.pose_head = nn.Linear(hidden, NUM_BODY_JOINTS * 4)
        # K has its own small network from z, trained only by the feedback and the spread term (D never sees K), so
        # it does not drift with the pose trunk; tanh layers keep its initial views symmetric about the subject.
        view_out = 4 if viewpoint_param == "angles" else 3  # (elevation, azimuth as a 2-vector, roll) or K
        self.view_head = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, view_out)
        ) if viewpoint else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # Poses start near the rest pose (the GAN moves them); K starts spread over the whole range, so that without
        # feedback G's viewpoints are a random augmentation (the paper's A2) and feedback reshapes them.
        nn.init.normal_(self.pose_head.weight, std=1e-3)
        if self.view_head is not None:  # pre-tanh values of about unit spread: views all around, any elevation
            nn.init.normal_(self.view_head[-1].weight, std=1.0 / 128**0.5)
        # Body shape, like K, from z through its own network (D judges poses only, so only the feedback moves it);
        # made last, so that the other weights draw the same numbers with and without it.
        self.shape_head = None
        if shape_dim > 0:
            self.shape_head = nn.Sequential(nn.Linear(latent_dim, 64), nn.Tanh(), nn.Linear(64, shape_dim))
            for m in self.shape_head:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight)
                    nn.init.zeros_(m.bias)
            # pre-sigmoid values of about unit spread: varied bodies from the start
            nn.init.normal_(self.shape_head[-1].weight, std=1.0 / 64**0.5)

    def forward(self, z: torch.Tensor) -> GeneratorOutput:
        h = self.trunk(z)
        v = self.pose_head(h).view(-1, NUM_BODY_JOINTS, 4)
        axis = torch.nn.functional.normalize(v[..., :3] + 1e-8, dim=-1)
        body_pose = axis * v[..., 3:]
        shape = torch.sigmoid(self.shape_head(z)) if self.shape_head is not None else None
        if self.view_head is None:
            k = torch.zeros(z.shape[0], 3, dtype=z.dtype, device=z.device)
            return GeneratorOutput(body_pose, k, axis_angle_to_matrix(k), shape)
        if self.viewpoint_param == "axis_angle":
            k = self.k_max * torch.tanh(self.view_head(z))
            return GeneratorOutput(body_pose, k, axis_angle_to_matrix(k), shape)
        v = self.view_head(z)
        azimuth = torch.atan2(v[:, 1], v[:, 2] + 1e-12)
        rot = rotation_from_angles(self.max_elevation * torch.tanh(v[:, 0]), azimuth, self.max_roll * torch.tanh(v[:, 3]))
        return GeneratorOutput(body_pose, matrix_to_axis_angle(rot.detach()), rot, shape)
