"""Dense depth loss: the per-cell depth distribution against the lidar's depth (BEVDepth-style).

A cell's lidar depth (training/depth_targets.py) becomes the class of its
nearest LID bin depth (the bins the frustum embedding uses, position.py);
cross-entropy over the bins on the cells the lidar reached. Cells without a
point, or whose depth lies beyond the last bin's reach (the far end of
`model.depth_range`), carry no loss. BEVDepth uses binary cross-entropy on
one-hot bins; softmax cross-entropy is used here because the depth-aware
position embedding reads the distribution's mean, which a softmax defines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bin_targets(
    depth: torch.Tensor, bin_depths: torch.Tensor, far: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(bin index, valid) of per-cell depths (any shape; 0 = no point) for increasing bin depths (D,).

    A depth goes to the nearest bin depth (bin edges halfway between them); it is
    valid when a point was there and it lies no farther than `far`.
    """
    edges = (bin_depths[1:] + bin_depths[:-1]) / 2
    index = torch.bucketize(depth.contiguous(), edges.to(depth.device))
    valid = (depth > 0) & (depth <= far)
    return index, valid


def depth_distribution_loss(
    logits: torch.Tensor, depth: torch.Tensor, bin_depths: torch.Tensor, far: float
) -> torch.Tensor:
    """Mean cross-entropy over the cells with lidar: logits (B, N, D, h, w), depth (B, N, h, w) metres."""
    index, valid = bin_targets(depth.to(logits.device), bin_depths, far)
    if not valid.any():
        return logits.sum() * 0.0  # keeps the graph (and DDP's view of the parameters) intact
    per_cell = logits.float().movedim(2, -1)[valid]  # (V, D)
    return F.cross_entropy(per_cell, index[valid])


def depth_errors(pred: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Absolute errors (metres) of predicted depths (B, N, 1, h, w) at the cells with lidar (B, N, h, w)."""
    valid = depth > 0
    return (pred[:, :, 0][valid] - depth[valid].to(pred.device)).abs()
