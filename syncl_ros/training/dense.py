"""Targets and losses of the dense convergence aids: per-camera object-center
heatmaps and center depth on the stride-16 image features (StreamPETR's focal
head idea; in the spirit of Co-DETR's dense auxiliary supervision, these heads
train the encoder and let detection queries start from likely centers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.network import DenseOutput


def project_centers(boxes: torch.Tensor, lidar2img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Box centers (G, 9) through each camera (N, 4, 4): feature-cell coordinates (N, G, 2), depths (N, G)."""
    homo = torch.cat([boxes[:, :3], torch.ones(len(boxes), 1)], dim=1)
    proj = torch.einsum("nij,gj->ngi", lidar2img.float(), homo)
    depth = proj[..., 2]
    return proj[..., :2] / depth.clamp(min=1e-3).unsqueeze(-1) / STRIDE, depth


def dense_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    lidar2img: torch.Tensor,
    h: int,
    w: int,
    num_classes: int,
    sigma: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian center heatmaps (N, K, h, w), depth targets (N, h, w) and their mask (N, h, w).

    Box centers are projected with each camera's lidar2img; a center seen by
    several cameras is a target in each.
    """
    n = lidar2img.shape[0]
    heat = torch.zeros(n, num_classes, h, w)
    depth = torch.zeros(n, h, w)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    if len(boxes) == 0:
        return heat, depth, mask
    uv, d = project_centers(boxes, lidar2img)
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    for cam, g in zip(*torch.nonzero(d > 0.5, as_tuple=True), strict=True):
        u, v = uv[cam, g]
        if not (0 <= u < w and 0 <= v < h):
            continue
        gauss = torch.exp(-((xs[None] - (u - 0.5)) ** 2 + (ys[:, None] - (v - 0.5)) ** 2) / (2 * sigma**2))
        k = int(labels[g])
        heat[cam, k] = torch.maximum(heat[cam, k], gauss)
        cu, cv = int(u), int(v)
        if not mask[cam, cv, cu] or d[cam, g] < depth[cam, cv, cu]:  # the nearer object owns the cell
            depth[cam, cv, cu] = d[cam, g]
        mask[cam, cv, cu] = True
        heat[cam, k, cv, cu] = 1.0
    return heat, depth, mask


def heatmap_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalized by the number of centers.

    log p and log(1 - p) come from logsigmoid: a saturated sigmoid (p == 1 in
    bfloat16) would otherwise give log(0) * 0 = NaN.
    """
    x = logits.float()
    p = x.sigmoid()
    pos = target.eq(1.0).float()
    pos_loss = -F.logsigmoid(x) * (1 - p) ** alpha * pos
    neg_loss = -F.logsigmoid(-x) * p**alpha * (1 - target) ** beta * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def dense_loss(
    dense: DenseOutput, targets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Heatmap focal loss + L1 on log depth at the center cells, over the batch."""
    heat = torch.stack([t[0] for t in targets]).to(dense.heatmap.device)
    depth = torch.stack([t[1] for t in targets]).to(dense.depth.device)
    mask = torch.stack([t[2] for t in targets]).to(dense.depth.device)
    loss = heatmap_focal_loss(dense.heatmap, heat)
    if mask.any():
        loss = loss + center_depth_loss(dense.depth[:, :, 0], depth, mask)
    return loss


def center_depth_loss(pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 on log depth at the center cells: predicted depths (metres, > 0), targets and mask alike shaped."""
    return F.l1_loss(pred[mask].float().log(), depth[mask].log())
