"""SynCL's instance-aware contrastive learning: the kernel contrastive loss between
detection and track embeddings of the same objects, and its train-only projection layers.

The detection embeddings are the C-decoder's one-to-many matches
(`syncl_ros.training.syncl.matching`), the track embeddings those of the slots
following the same objects; the loss pulls the two together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONTRASTIVE_TEMPERATURE = 0.1
KERNEL_RIDGE = 0.01


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
        out: torch.Tensor = self.norm(x + self.ffn(x))
        return out


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
