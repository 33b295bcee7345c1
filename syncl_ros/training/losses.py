"""Training losses: focal classification, weighted L1 on box codes, and SynCL's
instance-aware contrastive loss with its train-only projection layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from syncl_ros.model.box_coder import CODE_DIM

# Per-dimension weights of the code [x, y, z, log l, log w, log h, sin, cos, vx, vy]:
# velocity counts less (PETR-family default), it is noisy and hard to learn early.
DEFAULT_CODE_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
CONTRASTIVE_TEMPERATURE = 0.1
KERNEL_RIDGE = 0.01

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


# -- instance-aware contrastive learning -------------------------------------------


class ContrastiveProjector(nn.Module):
    """Maps C-decoder detection embeddings into the track-embedding space (train only).

    φ is a two-layer MLP; g_θ an FFN with a residual connection and LayerNorm, as
    in a transformer block. Only the contrastive loss uses it, so it is dropped at
    inference and from exported graphs; track embeddings are not projected.
    """

    def __init__(
        self, dim: int, hidden_dim: int | None = None, ffn_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        hidden_dim = hidden_dim or dim
        ffn_dim = ffn_dim or 2 * dim
        self.phi = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim)
        )
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, dim),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, det_emb: torch.Tensor) -> torch.Tensor:
        x = self.phi(det_emb)
        return self.norm(x + self.ffn(x))


def kernel_weights(
    det_instance: torch.Tensor, track_instance: torch.Tensor, ridge: float = KERNEL_RIDGE
) -> torch.Tensor:
    """(M, T) weights β of the kernel conditional mean embedding, conditioning on instance identity.

    For an anchor whose instance is z, β = (K + ridge·I)^-1 k(z) with K the
    identity-kernel Gram matrix of the track instances (K_ab = [z_a = z_b]) and
    k(z)_j = [z_j = z]. K is block-diagonal with all-ones blocks, so the solve has
    a closed form: 1 / (n_z + ridge) on the n_z tracks of instance z, 0 elsewhere.
    """
    same = det_instance.unsqueeze(1) == track_instance.unsqueeze(0)
    n_same = same.sum(dim=1, keepdim=True).to(torch.float32)
    return same.to(torch.float32) / (n_same + ridge).clamp(min=1e-12)


def kernel_contrastive_loss(
    det_emb: torch.Tensor,
    det_instance: torch.Tensor,
    track_emb: torch.Tensor,
    track_instance: torch.Tensor,
    temperature: float = CONTRASTIVE_TEMPERATURE,
    ridge: float = KERNEL_RIDGE,
) -> torch.Tensor:
    """Instance-aware contrastive loss between (projected) detection and track embeddings.

    A kernel-weighted InfoNCE in the form of weakly-supervised CCL-K (Tsai et al.,
    ICLR 2022, "Conditional Contrastive Learning with Kernel"), conditioning on
    instance identity. For a detection anchor x_i of instance z_i, with scores
    s_ij = cos(x_i, y_j) / temperature against the track embeddings y_j:

        pos_i  = Σ_j β_ij exp(s_ij)     (kernel estimate of E[exp s | z = z_i], see `kernel_weights`)
        loss_i = -log(pos_i / (pos_i + Σ_{j: z_j ≠ z_i} exp(s_ij)))

    so the negatives are the tracks of the other objects. With one track per
    instance and ridge=0 this is plain InfoNCE with one positive; with several
    tracks of an instance (frames batched together) the positive is their
    kernel-weighted mean. Instance ids must be unique across everything batched;
    negative ids (unmatched detections, free track slots) are ignored. Anchors
    without a positive track do not count. The result is the mean over anchors,
    0 (still attached to the graph) when there are none; gradients reach both sides.
    """
    det_ok, track_ok = det_instance >= 0, track_instance >= 0
    det_instance, track_instance = det_instance[det_ok], track_instance[track_ok]
    beta = kernel_weights(det_instance, track_instance, ridge)
    anchors = beta.sum(dim=1) > 0
    zero = 0.0 * (det_emb.sum() + track_emb.sum())  # keeps a graph for callers that always backprop
    if not anchors.any():
        return zero
    x = F.normalize(det_emb[det_ok][anchors].float(), dim=-1)
    y = F.normalize(track_emb[track_ok].float(), dim=-1)
    with torch.autocast(x.device.type, enabled=False):  # similarities in float32 under mixed precision
        scores = x @ y.T / temperature
    beta = beta[anchors]
    positive = beta > 0
    neg_inf = torch.finfo(scores.dtype).min
    log_pos = torch.logsumexp(torch.where(positive, scores + beta.clamp(min=1e-12).log(), neg_inf), dim=1)
    negatives = torch.where(positive, neg_inf, scores)
    log_all = torch.logsumexp(torch.cat([log_pos.unsqueeze(1), negatives], dim=1), dim=1)
    return (log_all - log_pos).mean() + zero
