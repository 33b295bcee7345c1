"""Query denoising (DN-DETR style convergence aid, training only).

Each ground-truth box, with its center jittered in proportion to its size, and
its class embedding, becomes an extra query that must reconstruct the original
box. Groups of such queries are hidden from the matching queries and from each
other by the attention bias, so they only teach, never leak answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from syncl_ros.model.box_coder import BoxCoder
from syncl_ros.model.decoder import MASKED


@dataclass
class DenoisingQueries:
    content: torch.Tensor  # (1, E, C)
    refs: torch.Tensor  # (1, E, 3) normalized
    bias: torch.Tensor  # (1, M, M) attention bias over all M = matching + E queries
    labels: torch.Tensor  # (E,) target class of each query
    codes: torch.Tensor  # (E, 10) target metric code of each query


def make_denoising(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    label_embed: nn.Embedding,
    coder: BoxCoder,
    num_matching: int,
    groups: int,
    noise: float,
    generator: torch.Generator,
) -> DenoisingQueries | None:
    g = len(boxes)
    if g == 0:
        return None
    rep_boxes, rep_labels = boxes.repeat(groups, 1), labels.repeat(groups)
    jitter = (torch.rand(len(rep_boxes), 3, generator=generator) * 2 - 1) * noise
    centers = rep_boxes[:, :3] + jitter * rep_boxes[:, 3:6] / 2
    refs = coder.normalize(centers).clamp(0.0, 1.0)
    e = len(rep_boxes)
    m = num_matching + e
    bias = torch.zeros(m, m)
    bias[:num_matching, num_matching:] = MASKED  # matching queries never see the noised answers
    for i in range(groups):
        lo, hi = num_matching + i * g, num_matching + (i + 1) * g
        bias[lo:hi, num_matching:lo] = MASKED
        bias[lo:hi, hi:] = MASKED
    content = label_embed(rep_labels.to(label_embed.weight.device))
    return DenoisingQueries(
        content[None],
        refs[None].to(content.device),
        bias[None].to(content.device),
        rep_labels,
        coder.encode(rep_boxes),
    )
