"""Image backbones + neck: six camera images -> one stride-16 feature map per camera.

`small` is a plain CNN that trains from scratch on a CPU. `resnet50` is the
standard ResNet-50 (bottleneck blocks 3-4-6-3) with a two-level neck (C4 +
upsampled C5), built here rather than taken from torchvision because no
torchvision release installs beside the pinned torch 2.13 on these machines;
the layer layout matches torchvision's, so its state dict keys load.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 16


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Backbone(nn.Module):
    """Images (N, 3, H, W) -> stride-16 features (N, C, H/16, W/16), in stages."""

    stride8_channels: int  # channels of the stride-8 level `levels` returns

    def stages(self) -> list[nn.Module]:
        """The stages, input first: what `train.frozen_stages` counts."""
        raise NotImplementedError

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (stride-8 features, the stride-16 output `forward` returns)."""
        raise NotImplementedError


class SmallBackbone(Backbone):
    """Four stride-2 stages (16x down), each followed by a residual pair of 3x3 convs."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        widths = (32, 64, 96, out_dim)
        cins = (3, *widths[:-1])
        self.down = nn.ModuleList(conv_bn(cin, w, 3, 2) for cin, w in zip(cins, widths, strict=True))
        self.blocks = nn.ModuleList(nn.Sequential(conv_bn(w, w), conv_bn(w, w)) for w in widths)
        self.stride8_channels = widths[2]

    def stages(self) -> list[nn.Module]:
        return [nn.ModuleList([down, block]) for down, block in zip(self.down, self.blocks, strict=True)]

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = []
        for down, block in zip(self.down, self.blocks, strict=True):
            x = down(x)
            x = x + block(x)
            outs.append(x)
        return outs[2], outs[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.levels(x)[1]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50Backbone(Backbone):
    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, layers = 64, []
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = [Bottleneck(cin, width, stride)] + [
                Bottleneck(width * 4, width, 1) for _ in range(blocks - 1)
            ]
            layers.append(nn.Sequential(*stage))
            cin = width * 4
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.lateral4 = nn.Conv2d(1024, out_dim, 1)
        self.lateral5 = nn.Conv2d(2048, out_dim, 1)
        self.smooth = conv_bn(out_dim, out_dim)
        self.stride8_channels = 512  # layer2's output

    def stages(self) -> list[nn.Module]:
        """The stages, input first (the stem goes with layer1, as in mmdetection's frozen_stages)."""
        stem = nn.ModuleList([self.conv1, self.bn1, self.layer1])
        return [stem, self.layer2, self.layer3, self.layer4]

    def levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        up = F.interpolate(self.lateral5(c5), size=c4.shape[-2:], mode="nearest")
        out: torch.Tensor = self.smooth(self.lateral4(c4) + up)
        return c3, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.levels(x)[1]


def build_backbone(kind: str, out_dim: int) -> Backbone:
    if kind == "small":
        return SmallBackbone(out_dim)
    if kind == "resnet50":
        return ResNet50Backbone(out_dim)
    raise ValueError(f"unknown backbone {kind!r} (small, resnet50)")
