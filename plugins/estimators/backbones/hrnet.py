"""HRNet-W48 as HybrIK's ``HRNetSMPLCam`` uses it (its ``preact`` module), in plain torch.

Why a separate module: HybrIK's HRNet checkpoint stores this network under the ``preact.`` prefix, so the parameter
names and shapes here must match the official ones exactly (every ``preact.*`` key of
``reference/hybrik_hrnet_w48_state_dict.txt``, 1956 entries, 75.51 M parameters).

Use::

    from posegen_plugins.estimators.backbones.hrnet import HRNetW48

    net = HRNetW48()                              # num_joints=29, depth_dim=64, both outputs on
    heatmaps, features = net(images)              # images (B, 3, 256, 256), already normalised
    # heatmaps: (B, 29*64 = 1856, 64, 64) raw 3D-heatmap logits from ``final_layer`` (reshape to (B, 29, 64, 64, 64)
    #           as (joint, depth, y, x), then softmax over the last three axes)
    # features: (B, 2048) the globally average-pooled output of the classification-style feature head

``HRNetW48(num_joints=29, depth_dim=64, generate_heatmaps=True, generate_features=True, generator=None)``.
``forward`` returns an ``HRNetOutput`` named tuple ``(heatmaps, features)``; an output that was switched off is
``None`` (HybrIK's regression variant ``HRNetSMPLCamReg`` builds it with heatmaps off). The input side must be a
multiple of 32; the heatmaps come out at 1/4 of the input side.

Structure (derived from the key list):
- stem: ``conv1`` 3x3 s2 (3->64) / ``bn1`` / ``conv2`` 3x3 s2 (64->64) / ``bn2``, each followed by ReLU;
  ``layer1``: 4 Bottlenecks (64 planes, 256 out).
- ``transition1``: 256 -> [48 (s1), 96 (s2)]; ``stage2``: 1 module, 2 branches. ``transition2`` adds 192 (s2);
  ``stage3``: 4 modules, 3 branches. ``transition3`` adds 384 (s2); ``stage4``: 3 modules, 4 branches, every module
  with multi-scale output (all 4 fuse rows). Each branch is 4 BASIC blocks; fusion sums, then ReLU.
  Fuse from a lower resolution: 1x1 conv + BN + nearest upsampling; from a higher one: chained 3x3 s2 conv + BN
  (ReLU between links, none after the last). All these convs are bias-free.
- ``final_layer``: 1x1 conv with bias, 48 -> num_joints*depth_dim, on the highest-resolution branch.
- feature head: ``incre_modules`` (one Bottleneck per branch: 48/96/192/384 -> 128/256/512/1024),
  ``downsamp_modules`` (3x3 s2 conv with bias + BN + ReLU, summing each level into the next),
  ``final_feat_layer`` (1x1 conv with bias 1024 -> 2048 + BN + ReLU), then global average pooling.

Random initialisation (only used without a checkpoint): He-normal convs (fan-out) drawn from ``generator``, BN
weight 1 / bias 0, conv biases 0, and the last BN of every residual block at weight 0 so each block starts as an
identity (eval-mode outputs stay O(10) instead of ~1e7). HRNet's own N(0, 0.001) start would make eval-mode outputs
vanish to the biases; it assumes pretrained weights get loaded on top.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from posegen_core.errors import ConfigError, ShapeError

from .resnet import BasicBlock, Bottleneck  # HRNet uses ResNet's blocks (same parameter names), at stride 1

WIDTH = 48
STAGE_CHANNELS = ((48, 96), (48, 96, 192), (48, 96, 192, 384))  # stages 2, 3, 4
STAGE_MODULES = (1, 4, 3)
BLOCKS_PER_BRANCH = 4
HEAD_CHANNELS = (32, 64, 128, 256)  # Bottleneck planes of incre_modules (x4 = 128, 256, 512, 1024)
FEATURE_DIM = 2048


class HRNetOutput(NamedTuple):
    """What ``HRNetW48.forward`` returns; unpacks as ``heatmaps, features``."""

    heatmaps: torch.Tensor | None  # (B, num_joints*depth_dim, H/4, W/4)
    features: torch.Tensor | None  # (B, 2048)


def _conv3x3(c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


def _conv1x1(c_in: int, c_out: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, bias=bias)




def _fuse_path(j: int, i: int, channels: tuple[int, ...]) -> nn.Module | None:
    """The path that brings branch ``j`` to branch ``i``'s resolution and width (None on the diagonal)."""
    if j == i:
        return None
    if j > i:  # lower resolution: project, then upsample by 2^(j-i)
        return nn.Sequential(
            _conv1x1(channels[j], channels[i]),
            nn.BatchNorm2d(channels[i]),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    links: list[nn.Module] = []
    for k in range(i - j):  # higher resolution: i-j stride-2 convs, widening only on the last one
        if k == i - j - 1:
            links.append(nn.Sequential(_conv3x3(channels[j], channels[i], stride=2), nn.BatchNorm2d(channels[i])))
        else:
            links.append(
                nn.Sequential(
                    _conv3x3(channels[j], channels[j], stride=2), nn.BatchNorm2d(channels[j]), nn.ReLU(inplace=True)
                )
            )
    return nn.Sequential(*links)


class HighResolutionModule(nn.Module):
    """Parallel branches of BASIC blocks, then every output row sums all branches brought to its resolution."""

    def __init__(self, channels: tuple[int, ...], blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(blocks))) for c in channels
        )
        rows = n if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(j, i, channels) for j in range(n)) for i in range(rows)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, path in enumerate(row):
                if path is not None:
                    y = y + path(xs[j])
            out.append(self.relu(y))
        return out


def _transition(c_prev: tuple[int, ...], c_next: tuple[int, ...]) -> nn.ModuleList:
    """Adapts the previous stage's branches to the next stage's: re-width an existing branch (3x3 s1) where its
    channels change, and grow each new branch from the lowest-resolution one by chained 3x3 s2 convs."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(c_next):
        if i < len(c_prev):
            layers.append(
                None if c_prev[i] == c
                else nn.Sequential(_conv3x3(c_prev[i], c), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            )
            continue
        links = []
        for k in range(i + 1 - len(c_prev)):
            c_in = c_prev[-1]
            c_out = c if k == i - len(c_prev) else c_in
            links.append(nn.Sequential(_conv3x3(c_in, c_out, stride=2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
        layers.append(nn.Sequential(*links))
    return nn.ModuleList(layers)


class HRNetW48(nn.Module):
    """HybrIK's HRNet-W48 (``get_hrnet(48, num_joints, depth_dim, generate_feat, generate_hm)``): see module doc."""

    def __init__(
        self,
        num_joints: int = 29,
        depth_dim: int = 64,
        generate_heatmaps: bool = True,
        generate_features: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not (generate_heatmaps or generate_features):
            raise ConfigError(
                "HRNetW48 was built with generate_heatmaps=False and generate_features=False; it needs at least one "
                "output: set one of them to True."
            )
        self.num_joints = num_joints
        self.depth_dim = depth_dim
        self.generate_heatmaps = generate_heatmaps
        self.generate_features = generate_features

        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = _conv3x3(64, 64, stride=2)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *(Bottleneck(256, 64) for _ in range(3)))

        c2, c3, c4 = STAGE_CHANNELS
        self.transition1 = _transition((256,), c2)
        self.stage2 = self._stage(c2, STAGE_MODULES[0])
        self.transition2 = _transition(c2, c3)
        self.stage3 = self._stage(c3, STAGE_MODULES[1])
        self.transition3 = _transition(c3, c4)
        # HybrIK keeps stage 4 multi-scale only when it builds the feature head (multi_scale_output=generate_feat).
        self.stage4 = self._stage(c4, STAGE_MODULES[2], last_multi_scale=generate_features)

        if generate_features:
            self.incre_modules = nn.ModuleList(
                nn.Sequential(Bottleneck(c, h)) for c, h in zip(c4, HEAD_CHANNELS)
            )
            widths = [h * Bottleneck.expansion for h in HEAD_CHANNELS]
            self.downsamp_modules = nn.ModuleList(
                nn.Sequential(_conv3x3(a, b, stride=2, bias=True), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
                for a, b in zip(widths[:-1], widths[1:])
            )
            self.final_feat_layer = nn.Sequential(
                _conv1x1(widths[-1], FEATURE_DIM, bias=True), nn.BatchNorm2d(FEATURE_DIM), nn.ReLU(inplace=True)
            )
        if generate_heatmaps:  # registered last, as in the official state dict
            self.final_layer = _conv1x1(c4[0], num_joints * depth_dim, bias=True)
        self.reset_parameters(generator)

    @staticmethod
    def _stage(channels: tuple[int, ...], modules: int, last_multi_scale: bool = True) -> nn.Sequential:
        return nn.Sequential(
            *(
                HighResolutionModule(channels, BLOCKS_PER_BRANCH, last_multi_scale or m < modules - 1)
                for m in range(modules)
            )
        )

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random start for training without a checkpoint; every draw comes from ``generator``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        # Residual blocks start as identities (last BN weight 0): with He init alone, 112 stacked residual blocks
        # plus the fuse sums blow eval-mode activations up to ~1e7; this keeps them O(10).
        for m in self.modules():
            if isinstance(m, BasicBlock):
                m.bn2.weight.zero_()
            elif isinstance(m, Bottleneck):
                m.bn3.weight.zero_()

    @staticmethod
    def _run_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [xs[i] if layer is None else layer(xs[min(i, len(xs) - 1)]) for i, layer in enumerate(transition)]

    def forward(self, x: torch.Tensor) -> HRNetOutput:
        """``x`` (B, 3, H, W) normalised images, H and W multiples of 32 (HybrIK: 256x256)."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32 or 0 in x.shape[2:]:
            raise ShapeError(
                f"HRNetW48 expects images of shape (B, 3, H, W) with H and W multiples of 32, got {tuple(x.shape)}; "
                "crop or resize to 256x256 as HybrIK does."
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(self._run_transition(self.transition1, [x]))
        ys = self.stage3(self._run_transition(self.transition2, ys))
        ys = self.stage4(self._run_transition(self.transition3, ys))

        heatmaps = self.final_layer(ys[0]) if self.generate_heatmaps else None
        features = None
        if self.generate_features:
            y = self.incre_modules[0](ys[0])
            for i, down in enumerate(self.downsamp_modules):
                y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
            features = self.final_feat_layer(y).mean(dim=(2, 3))
        return HRNetOutput(heatmaps, features)
