"""Co-DETR-style one-to-many auxiliary supervision on the per-camera image features.

A dense head (train only, discarded at inference) predicts at every stride-16
cell a class and the 3D box of an object whose projected center lies within
`radius` cells: every object gets several positive cells (one-to-many), which
gives the encoder far more supervision per image than the decoder's one-to-one
matching. Per positive cell the regression target is the center's sub-cell
offset (du, dv), its log depth, log size, sin/cos yaw and velocity.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from syncl_ros.training.dense import project_centers
from syncl_ros.training.losses import sigmoid_focal_loss

AUX_CODE = 10  # du, dv, log depth, log l, log w, log h, sin, cos, vx, vy


class AuxBoxHead(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True))
        self.cls = nn.Conv2d(dim, num_classes, 1)
        self.reg = nn.Conv2d(dim, AUX_CODE, 1)
        nn.init.constant_(cast(torch.Tensor, self.cls.bias), -4.6)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, C, h, w) -> class logits (B, N, h, w, K), codes (B, N, h, w, 10)."""
        b, n = feats.shape[:2]
        x = self.body(feats.flatten(0, 1))
        cls = self.cls(x).permute(0, 2, 3, 1)
        reg = self.reg(x).permute(0, 2, 3, 1)
        return cls.reshape(b, n, *cls.shape[1:]), reg.reshape(b, n, *reg.shape[1:])


def aux_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    lidar2img: torch.Tensor,
    h: int,
    w: int,
    num_classes: int,
    radius: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell labels (N, h, w) with num_classes = background, and codes (N, h, w, 10)."""
    n = lidar2img.shape[0]
    labels_out = torch.full((n, h, w), num_classes, dtype=torch.long)
    codes = torch.zeros(n, h, w, AUX_CODE)
    owner_depth = torch.full((n, h, w), float("inf"))
    if len(boxes) == 0:
        return labels_out, codes
    uv, depth = project_centers(boxes, lidar2img)
    jj, ii = torch.meshgrid(torch.arange(w) + 0.5, torch.arange(h) + 0.5, indexing="xy")
    for cam, g in zip(*torch.nonzero(depth > 0.5, as_tuple=True), strict=True):
        u, v, d = uv[cam, g, 0], uv[cam, g, 1], depth[cam, g]
        near = ((jj - u).abs() <= radius) & ((ii - v).abs() <= radius) & (d < owner_depth[cam])
        if not near.any():
            continue
        owner_depth[cam][near] = d  # the nearer object owns a contested cell
        labels_out[cam][near] = labels[g]
        box = boxes[g]
        code = torch.stack([u - jj[near], v - ii[near]], dim=-1)
        rest = torch.cat(
            [d.log().view(1), box[3:6].clamp(min=1e-3).log(), box[6:7].sin(), box[6:7].cos(), box[7:9]]
        )
        codes[cam][near] = torch.cat([code, rest.expand(len(code), -1)], dim=-1)
    return labels_out, codes


def aux_loss(
    cls: torch.Tensor,
    reg: torch.Tensor,
    targets: list[tuple[torch.Tensor, torch.Tensor]],
    cls_weight: float,
    box_weight: float,
) -> torch.Tensor:
    labels = torch.stack([t[0] for t in targets]).to(cls.device).flatten()
    codes = torch.stack([t[1] for t in targets]).to(reg.device).reshape(-1, AUX_CODE)
    logits, pred = cls.reshape(-1, cls.shape[-1]), reg.reshape(-1, AUX_CODE)
    positive = labels < cls.shape[-1]
    loss = cls_weight * sigmoid_focal_loss(logits, labels)
    if positive.any():
        loss = loss + box_weight * (pred[positive] - codes[positive]).abs().sum(-1).mean()
    return loss
