"""ResNet-34 and ResNet-50 in plain torch, with torchvision's parameter names (conv1, bn1, layer1..layer4).

SPIN's HMR (ResNet-50, keys without prefix) and HybrIK's camera model (ResNet-34 under ``preact.``) both store their
backbones with exactly these names, so their official checkpoints load without renaming. There is no ``fc`` layer:
the backbone ends at ``layer4`` and returns the feature map; each model pools it its own way.

Layout (torchvision v1.5): stem 7x7/2 conv, BN, ReLU, 3x3/2 max-pool; four stages of residual blocks; in a
Bottleneck the stride sits on the 3x3 conv (``conv2``); ``downsample`` = Sequential(1x1 conv, BN) where the shape
changes.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or projected) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand x4: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


#: Blocks per stage for the depths posegen's estimators use.
RESNET_SPECS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """A torchvision-named ResNet trunk without the classifier: (B, 3, H, W) -> (B, C, H/32, W/32).

    ``out_channels`` is 512 for ResNet-18/34 and 2048 for ResNet-50/101.
    """

    def __init__(self, depth: int = 50, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_SPECS)}; got {depth}.")
        block, layers = RESNET_SPECS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for k in range(n):
                stride = 2 if (i > 0 and k == 0) else 1
                blocks.append(block(cin, planes, stride))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = cin
        init_resnet_weights(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


@torch.no_grad()
def init_resnet_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """He-normal convs (std sqrt(2/n), n = k*k*out) and unit BatchNorm: the initialisation SPIN and HybrIK use.

    Every draw comes from ``generator`` (a fixed seed when None), so the same seed builds the same network."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n), generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet34(generator: torch.Generator | None = None) -> ResNet:
    """ResNet-34 trunk (HybrIK's camera model backbone, 512 output channels)."""
    return ResNet(34, generator)


def resnet50(generator: torch.Generator | None = None) -> ResNet:
    """ResNet-50 trunk (SPIN's HMR backbone, 2048 output channels)."""
    return ResNet(50, generator)
