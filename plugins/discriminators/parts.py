"""The paper's part-based LSGAN discriminator on axis-angle poses, plus a history pool of fake poses."""

from __future__ import annotations

import torch
from torch import nn

import posegen_core as pg


def _head(inputs: int, width: int, mid: int) -> nn.Sequential:
    # The official Disc_Joint_Path's shape: Linear(3k -> width) -> width -> width -> mid -> 1 with LeakyReLU.
    return nn.Sequential(
        nn.Linear(inputs, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
        nn.Linear(width, width), nn.LeakyReLU(0.2), nn.Linear(width, mid), nn.LeakyReLU(0.2), nn.Linear(mid, 1),
    )


class PartDiscriminator(pg.Discriminator):
    """Part-based LSGAN discriminator: torso, arms, legs, head and the whole body, on axis-angle body_pose.

    The official heads are width=500, mid=1000 (9M parameters, most of a CPU iteration); the default 256/256 is 4x
    cheaper and learns the pose distribution as well on posegen's pose sources. Pass width=500, mid=1000 to match.
    """

    def __init__(self, width: int = 256, mid: int = 256, parts: dict[str, tuple[int, ...]] | None = None) -> None:
        super().__init__()
        parts = dict(pg.skeleton.BODY_PARTS if parts is None else parts)
        # D sees theta only (23 body joints); the root (joint 0, carried by K) is dropped from the part lists.
        self.part_index = {
            name: [j - 1 for j in joints if j > 0] for name, joints in parts.items()
        }
        self.part_index["body"] = list(range(pg.skeleton.NUM_BODY_JOINTS))
        self.head_names = tuple(self.part_index)
        self.heads = nn.ModuleDict({n: _head(3 * len(idx), width, mid) for n, idx in self.part_index.items()})

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        pg.validation.check_tensor(body_pose, "body_pose", (None, pg.skeleton.NUM_BODY_JOINTS, 3))
        return torch.cat(
            [self.heads[n](body_pose[:, idx].flatten(1)) for n, idx in self.part_index.items()], dim=1
        )


@pg.hookimpl
def posegen_register_discriminators(register):
    register("parts", PartDiscriminator)
