"""The generator G: latent z -> body pose theta (23 joints, axis-angle) and camera viewpoint K (axis-angle).

The pose trunk follows the official code's BAGenerator (Linear 256 + BatchNorm + LeakyReLU, two stages of two such
layers, a per-joint (axis, angle) decode). K is decoded as ``k_max * tanh`` per component, so its range can be bounded;
with ``viewpoint=False`` G generates theta only (the paper's A1 ablation) and K is always 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .skeleton import NUM_BODY_JOINTS


@dataclass
class GeneratorOutput:
    body_pose: torch.Tensor  # (B, 23, 3)
    viewpoint: torch.Tensor  # (B, 3)


def _block(i: int, o: int) -> list[nn.Module]:
    return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.LeakyReLU(0.01)]


class PoseGenerator(nn.Module):
    def __init__(
        self, latent_dim: int = 32, hidden: int = 256, stages: int = 2, viewpoint: bool = True,
        k_max: float = torch.pi,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.viewpoint = viewpoint
        self.k_max = float(k_max)
        layers = _block(latent_dim, hidden)
        for _ in range(stages):
            layers += _block(hidden, hidden) + _block(hidden, hidden)
        self.trunk = nn.Sequential(*layers)
        self.pose_head = nn.Linear(hidden, NUM_BODY_JOINTS * 4)
        self.view_head = nn.Linear(hidden, 3) if viewpoint else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # Poses start near the rest pose (the GAN moves them); K starts spread over the whole range, so that without
        # feedback G's viewpoints are a random augmentation (the paper's A2) and feedback reshapes them.
        nn.init.normal_(self.pose_head.weight, std=1e-3)

    def forward(self, z: torch.Tensor) -> GeneratorOutput:
        h = self.trunk(z)
        v = self.pose_head(h).view(-1, NUM_BODY_JOINTS, 4)
        axis = torch.nn.functional.normalize(v[..., :3] + 1e-8, dim=-1)
        body_pose = axis * v[..., 3:]
        if self.view_head is None:
            k = torch.zeros(z.shape[0], 3, dtype=z.dtype, device=z.device)
        else:
            k = self.k_max * torch.tanh(self.view_head(h))
        return GeneratorOutput(body_pose, k)
