"""Box coding between the network's raw head outputs, regression targets and boxes.

The head predicts, per query, 10 numbers: a center offset in inverse-sigmoid
space relative to the query's reference point (3), log size (l, w, h), sin and
cos of the yaw, and the planar velocity (vx, vy). Decoded, a "code" is the same
10 numbers in metric form [x, y, z, log l, log w, log h, sin, cos, vx, vy]; the
L1 loss compares codes, and boxes are (…, 9) [x, y, z, l, w, h, yaw, vx, vy]
as everywhere in the package. Reference points are normalized to [0, 1] over
the point-cloud range.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CODE_DIM = 10
# Detection range (x_min, y_min, z_min, x_max, y_max, z_max) in the model frame: PETR's nuScenes range.
DEFAULT_PC_RANGE = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
_EPS = 1e-5


def inverse_sigmoid(x: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    x = x.clamp(min=0.0, max=1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


class BoxCoder:
    def __init__(self, pc_range: Sequence[float] = DEFAULT_PC_RANGE) -> None:
        if len(pc_range) != 6:
            raise ValueError(f"pc_range needs 6 numbers, got {list(pc_range)}")
        self.pc_range = tuple(float(v) for v in pc_range)

    def _lo_span(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor(self.pc_range[:3], dtype=like.dtype, device=like.device)
        hi = torch.tensor(self.pc_range[3:], dtype=like.dtype, device=like.device)
        return lo, hi - lo

    def normalize(self, xyz: torch.Tensor) -> torch.Tensor:
        lo, span = self._lo_span(xyz)
        return (xyz - lo) / span

    def denormalize(self, ref: torch.Tensor) -> torch.Tensor:
        lo, span = self._lo_span(ref)
        return ref * span + lo

    def decode(self, raw: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head output (…, 10) and reference (…, 3) -> (metric code (…, 10), refined reference (…, 3))."""
        new_ref = torch.sigmoid(raw[..., :3] + inverse_sigmoid(ref))
        code = torch.cat([self.denormalize(new_ref), raw[..., 3:]], dim=-1)
        return code, new_ref

    @staticmethod
    def encode(boxes: torch.Tensor) -> torch.Tensor:
        """Boxes (…, 9) -> metric code (…, 10): the regression target."""
        size = boxes[..., 3:6].clamp(min=_EPS).log()
        yaw = boxes[..., 6:7]
        return torch.cat([boxes[..., :3], size, yaw.sin(), yaw.cos(), boxes[..., 7:9]], dim=-1)

    @staticmethod
    def to_boxes(code: torch.Tensor) -> torch.Tensor:
        """Metric code (…, 10) -> boxes (…, 9)."""
        yaw = torch.atan2(code[..., 6:7], code[..., 7:8])
        return torch.cat([code[..., :3], code[..., 3:6].exp(), yaw, code[..., 8:10]], dim=-1)
