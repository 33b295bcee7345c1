"""Center depth read from the stride-8 features as well as the stride-16 ones.

The heatmap seeds place each detection query at its cell's center depth, and
the decoder refines that range by only a few percent (docs/training.md, "Far
range"), so the seed's depth is what a far box's range error is made of. A far
car spans a few pixels of the 352x128 input: the stride-16 cell that holds it
has lost most of where its outline sits. This head sees the stride-8 level of
the same backbone, folded into the stride-16 grid (each 2x2 block of stride-8
cells becomes channels of its stride-16 cell), beside the stride-16 features.

It runs inside the encoder graph, which returns the depth as one extra channel
after the features (`TrackerNet.encode`), so the decoder graph, the feature
cache and every backend keep passing one tensor per frame.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class FineDepthHead(nn.Module):
    """(stride-16 (B, C, h, w), stride-8 (B, C8, 2h, 2w)) features -> raw center depth (B, 1, h, w)."""

    def __init__(self, dim: int, stride8_channels: int) -> None:
        super().__init__()
        self.dim = dim
        self.conv = nn.Conv2d(dim + 4 * stride8_channels, dim, 3, padding=1)
        self.out = nn.Conv2d(dim, 1, 1)

    def init_from(self, depth_head: nn.Sequential) -> None:
        """Start as a trained stride-16 depth head (3x3 conv, ReLU, 1x1 conv): its weights on the
        stride-16 channels, zeros on the stride-8 ones, so refitting starts from what it gave."""
        first, last = depth_head[0], depth_head[2]
        if not isinstance(first, nn.Conv2d) or not isinstance(last, nn.Conv2d) or first.bias is None:
            raise TypeError("expected a Conv2d (with bias), ReLU, Conv2d depth head")
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, : self.dim] = first.weight
            cast(torch.Tensor, self.conv.bias).copy_(first.bias)
            self.out.load_state_dict(last.state_dict())

    def forward(self, f16: torch.Tensor, f8: torch.Tensor) -> torch.Tensor:
        x = torch.cat([f16, F.pixel_unshuffle(f8, 2)], dim=1)
        out: torch.Tensor = self.out(F.relu(self.conv(x)))
        return out
