"""Training losses: focal classification and weighted L1 on box codes.

SynCL's contrastive loss lives with the rest of SynCL (`syncl_ros.training.syncl.contrastive`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from syncl_ros.model.box_coder import CODE_DIM

# Per-dimension weights of the code [x, y, z, log l, log w, log h, sin, cos, vx, vy]:
# velocity counts less (PETR-family default), it is noisy and hard to learn early.
DEFAULT_CODE_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0

Normalizer = float | torch.Tensor | None


def _normalize_by(total: torch.Tensor, normalizer: Normalizer, default: int) -> torch.Tensor:
    denom = torch.as_tensor(
        default if normalizer is None else normalizer, dtype=total.dtype, device=total.device
    )
    return total / denom.clamp(min=1.0)


# -- detection losses -------------------------------------------------------------


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target_labels: torch.Tensor,
    alpha: float = FOCAL_ALPHA,
    gamma: float = FOCAL_GAMMA,
    normalizer: Normalizer = None,
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) of (N, C) logits, summed and normalized.

    target_labels (N,) holds a class in [0, C) or C for background (all-zero
    target). The default normalizer is the number of foreground queries (at least
    1), as in DETR-family detectors; pass the count across devices when training
    on several.
    """
    num_classes = logits.shape[-1]
    labels = target_labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() > num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}] ({num_classes} = background)")
    # One extra column takes the background label, then goes away.
    target = F.one_hot(labels, num_classes + 1)[..., :num_classes].to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = logits.sigmoid()
    p_true = prob * target + (1.0 - prob) * (1.0 - target)
    alpha_t = alpha * target + (1.0 - alpha) * (1.0 - target)
    loss = alpha_t * (1.0 - p_true).pow(gamma) * ce
    return _normalize_by(loss.sum(), normalizer, int((labels < num_classes).sum()))


def box_l1_loss(
    pred_code: torch.Tensor,
    gt_code: torch.Tensor,
    weights: Sequence[float] | torch.Tensor = DEFAULT_CODE_WEIGHTS,
    normalizer: Normalizer = None,
) -> torch.Tensor:
    """Weighted L1 between matched metric codes (N, 10), summed and divided by the normalizer (default N).

    Non-finite targets (unknown velocities) contribute nothing and no gradient.
    """
    if pred_code.shape != gt_code.shape or pred_code.shape[-1] != CODE_DIM:
        shapes = f"{tuple(pred_code.shape)}, {tuple(gt_code.shape)}"
        raise ValueError(f"need two (N, {CODE_DIM}) codes, got {shapes}")
    # Filling unknown targets with the (detached) prediction zeroes both the term and
    # its gradient; masking the difference afterwards would leak NaN gradients.
    gt = torch.where(torch.isfinite(gt_code), gt_code, pred_code.detach())
    w = torch.as_tensor(weights, dtype=pred_code.dtype, device=pred_code.device)
    loss = ((pred_code - gt).abs() * w).sum()
    return _normalize_by(loss, normalizer, pred_code.shape[0])
