"""``simple``: a compact CNN that regresses SMPL-24 joints and rotations from 64x64 crops, trainable on 2 CPU cores.

It exists so the whole method runs with no downloads: ``posegen pretrain`` trains it on a source domain in minutes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import posegen_core as pg


def _conv(i: int, o: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class SimpleEstimator(pg.Estimator):
    """Small CNN (64x64 input): joints (24x3) and SPIN-6D rotations (24x6) from a flattened 4x4 feature map."""

    name = "simple"
    input_size = 64

    def __init__(self, checkpoint: str | Path | None = None, width: int = 32, hidden: int = 512,
                 input_size: int = 64, warn: bool = True) -> None:
        super().__init__()
        self.width = width
        self.hidden = hidden
        self.input_size = input_size
        w = width
        self.features = nn.Sequential(
            _conv(3, w, 2), _conv(w, w, 1),  # 32
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1),  # 16
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w, 1),  # 8
            _conv(4 * w, 8 * w, 2),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * w * 16, hidden), nn.ReLU(inplace=True))
        self.joints_out = nn.Linear(hidden, pg.skeleton.NUM_JOINTS * 3)
        self.rot_out = nn.Linear(hidden, pg.skeleton.NUM_JOINTS * 6)
        nn.init.zeros_(self.joints_out.weight)
        with torch.no_grad():  # start at the rest skeleton seen from the front, identity rotations
            rest = pg.skeleton.rest_joints() @ pg.camera.frontal_rotation().T
            self.joints_out.bias.copy_(rest.flatten())
            nn.init.zeros_(self.rot_out.weight)
            self.rot_out.bias.copy_(pg.rotations.matrix_to_rot6d(torch.eye(3)).repeat(pg.skeleton.NUM_JOINTS))
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        elif warn:
            warnings.warn(
                "simple estimator built with random weights (no checkpoint): run `posegen pretrain` or pass "
                "checkpoint=PATH for a pre-trained model.", stacklevel=2,
            )

    def options(self) -> dict[str, Any]:
        return {"width": self.width, "hidden": self.hidden, "input_size": self.input_size}

    def forward(self, images: torch.Tensor) -> pg.EstimatorOutput:
        pg.validation.check_tensor(images, "images", (None, 3, None, None), finite=False,
                                   hint="Images are (B, 3, H, W), RGB, float in [0, 1].")
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        h = self.head(self.features(images * 2.0 - 1.0))
        joints = self.joints_out(h).view(-1, pg.skeleton.NUM_JOINTS, 3)
        rot = pg.rotations.rot6d_to_matrix(self.rot_out(h).view(-1, pg.skeleton.NUM_JOINTS, 6))
        return pg.EstimatorOutput(joints=joints - joints[:, :1], rotations=rot)


def build(checkpoint: str | Path | None = None, **options: Any) -> SimpleEstimator:
    """Build ``simple``; options saved in a posegen checkpoint win, so the architecture always matches the weights."""
    if checkpoint is not None:
        data = pg.io.load_checkpoint_file(checkpoint, what="simple estimator checkpoint")
        if isinstance(data, dict) and data.get("posegen_estimator") == "simple":
            options = {**options, **data.get("options", {})}
    return SimpleEstimator(checkpoint=checkpoint, **options)


@pg.hookimpl
def posegen_register_estimators(register):
    register("simple", build, description="Compact CNN on 64x64 crops; pre-trained by `posegen pretrain` (CPU, minutes).")
