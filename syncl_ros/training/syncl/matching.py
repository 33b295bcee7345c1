"""Assignment of queries to ground truth objects for SynCL's task-specific hybrid matching.

Costs follow the DETR-family 3D detectors (PETR, PF-Track): a focal-style
classification cost plus an L1 cost between metric box codes
(`syncl_ros.model.box_coder`; velocity weighted 0.2 as in the loss), weighted
2.0 and 0.25.

Per frame, ground truth objects fall into two groups: *persistent* objects
already followed by a live track query, and *new-born* objects without one.

- S-decoder (self-attention, the one used at inference): detection queries are
  matched one-to-one (Hungarian) to the new-born objects only; track queries keep
  the object with their instance id, or no object once it has left the scene.
- C-decoder (same weights, no self-attention, training only): track queries as
  above; detection queries are matched one-to-many to the persistent objects only,
  at most `k` per object, and the pairs can be thinned by the Gaussian-mixture
  query filter (`syncl_ros.training.syncl.query_filter`). The paper's ablation chose
  persistent objects over new-born or all ones (44.7 against 41.1 / 42.6 AMOTA).
  What the C-decoder says about the *new-born* objects is left open there; here
  the detection queries that the same one-to-many matching would give to a
  new-born object are *ignored* by its loss (neither object nor "no object"):
  without self-attention they cannot know which objects are tracked, and
  teaching them "no object" for what the S-decoder teaches them to find set the
  two decoders against each other (on a clip's first frame, where every object
  is new-born, the C-decoder taught every confident query "no object").

Every index returned here refers to the full per-frame ground truth arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from syncl_ros.training.losses import DEFAULT_CODE_WEIGHTS, FOCAL_ALPHA, FOCAL_GAMMA
from syncl_ros.training.syncl.query_filter import keep_mask

CLASS_COST_WEIGHT = 2.0  # PF-Track
BOX_COST_WEIGHT = 0.25  # PF-Track
DEFAULT_K = 5
NO_MATCH = -1
_EPS = 1e-8
# Stand-in for non-finite costs: linear_sum_assignment rejects inf/NaN, and a huge
# finite value still makes such a pair the last choice.
_BIG_COST = 1e8

IdsLike = torch.Tensor | Sequence[int | None]


# -- costs ----------------------------------------------------------------------


def class_cost(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA
) -> torch.Tensor:
    """Focal-style classification cost (Q, C) logits × (G,) labels -> (Q, G).

    The cost of giving query q the label of object g is the focal loss of q's
    sigmoid score for that class as a positive minus its focal loss as a negative,
    so confident right answers are cheap and the scale matches the focal loss.
    """
    prob = logits.sigmoid()
    pos = -alpha * (1.0 - prob).pow(gamma) * (prob + _EPS).log()
    neg = -(1.0 - alpha) * prob.pow(gamma) * (1.0 - prob + _EPS).log()
    labels = labels.long()
    return pos[:, labels] - neg[:, labels]


def box_cost(
    pred_code: torch.Tensor, gt_code: torch.Tensor, weights: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted L1 distance between metric box codes (Q, 10) × (G, 10) -> (Q, G).

    `weights` scales each code dimension (e.g. a low weight on velocity, which is
    noisy early in training); None weighs all dimensions 1. Non-finite ground truth
    entries (unknown velocities) do not count.
    """
    diff = (pred_code.unsqueeze(1) - gt_code.unsqueeze(0)).abs()
    diff = torch.where(torch.isfinite(gt_code).unsqueeze(0), diff, torch.zeros_like(diff))
    if weights is not None:
        diff = diff * torch.as_tensor(weights, dtype=diff.dtype, device=diff.device)
    return diff.sum(-1)


def matching_cost(
    logits: torch.Tensor,
    pred_code: torch.Tensor,
    labels: torch.Tensor,
    gt_code: torch.Tensor,
    class_weight: float = CLASS_COST_WEIGHT,
    box_weight: float = BOX_COST_WEIGHT,
    box_dim_weights: Sequence[float] | torch.Tensor | None = DEFAULT_CODE_WEIGHTS,
) -> torch.Tensor:
    """Weighted sum of the class and box costs, (Q, G); computed without gradient."""
    with torch.no_grad():
        cls = class_cost(logits.detach(), labels)
        box = box_cost(pred_code.detach(), gt_code, box_dim_weights)
        return class_weight * cls + box_weight * box


# -- assignment -----------------------------------------------------------------


def _as_numpy_cost(cost: torch.Tensor) -> NDArray[np.float64]:
    c = cost.detach().to(torch.float64).cpu().numpy()
    return np.nan_to_num(c, nan=_BIG_COST, posinf=_BIG_COST, neginf=-_BIG_COST)


def _empty_pair(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    empty = torch.empty(0, dtype=torch.long, device=device)
    return empty, empty.clone()


def hungarian(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment of a (Q, G) cost matrix.

    Returns (query_idx, gt_idx) LongTensors of length min(Q, G), sorted by query.
    """
    if cost.ndim != 2:
        raise ValueError(f"cost must be (Q, G), got shape {tuple(cost.shape)}")
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        return _empty_pair(cost.device)
    rows, cols = linear_sum_assignment(_as_numpy_cost(cost))
    return (
        torch.as_tensor(rows, dtype=torch.long, device=cost.device),
        torch.as_tensor(cols, dtype=torch.long, device=cost.device),
    )


def one_to_many(cost: torch.Tensor, k: int = DEFAULT_K) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost assignment where each object takes at most k queries and each query at most one object.

    Solved exactly as a one-to-one problem against the object columns repeated k
    times. As many pairs as possible are made (min(Q, k·G)), so when queries are
    scarce every query is used; the query filter may drop the poor ones afterwards.
    Returns (query_idx, gt_idx) sorted by query; k=1 is plain Hungarian matching.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    num_gt = cost.shape[1]
    query_idx, col_idx = hungarian(cost.repeat(1, k))
    # Column c of the repeated matrix is copy c // G of object c % G.
    return query_idx, col_idx % max(num_gt, 1)


# -- identities -----------------------------------------------------------------


def _ids(ids: IdsLike, device: torch.device | None = None) -> torch.Tensor:
    """Instance ids as a LongTensor; None (a free track slot) becomes -1."""
    if isinstance(ids, torch.Tensor):
        return ids.to(device=device, dtype=torch.long).reshape(-1)
    return torch.tensor([NO_MATCH if i is None else int(i) for i in ids], dtype=torch.long, device=device)


def split_newborn_persistent(
    gt_instance_ids: IdsLike, tracked_instance_ids: IdsLike
) -> tuple[torch.Tensor, torch.Tensor]:
    """(newborn_mask, persistent_mask), both (G,) bool: is each object followed by a live track?

    Negative (or None) tracked ids are free slots and follow nothing.
    """
    gt = _ids(gt_instance_ids)
    tracked = _ids(tracked_instance_ids, gt.device)
    persistent = torch.isin(gt, tracked[tracked >= 0])
    return ~persistent, persistent


def assign_tracks(track_instance_ids: IdsLike, gt_instance_ids: IdsLike) -> torch.Tensor:
    """By-identity targets of the track slots: (S,) index of the object with the slot's id, or -1.

    A free slot (id -1 or None) and a slot whose object has left the scene get -1
    ("no object"), so they are supervised as background.
    """
    gt = _ids(gt_instance_ids)
    tracks = _ids(track_instance_ids, gt.device)
    if torch.unique(gt).numel() != gt.numel():
        raise ValueError("ground truth instance ids must be unique within a frame")
    same = (tracks.unsqueeze(1) == gt.unsqueeze(0)) & (tracks >= 0).unsqueeze(1)
    found = same.any(dim=1)
    # argmax over a bool row finds the first (the only) True column.
    first = same.to(torch.uint8).argmax(dim=1) if gt.numel() else torch.zeros_like(tracks)
    return torch.where(found, first, torch.full_like(tracks, NO_MATCH))


# -- per-frame hybrid targets ---------------------------------------------------


@dataclass(frozen=True)
class DecoderTargets:
    """Targets of one decoder pass in one frame; gt indices refer to the frame's full gt arrays."""

    det_query_idx: torch.Tensor  # (N,) matched detection queries
    det_gt_idx: torch.Tensor  # (N,) their objects
    det_cost: torch.Tensor  # (N,) matching cost of each pair
    track_gt_idx: torch.Tensor  # (S,) object of each track slot, -1 for none
    num_candidates: int  # detection pairs before query filtering (== N without it)
    # Detection queries left out of the classification loss (the C-decoder's new-born candidates).
    ignore_query_idx: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    @property
    def num_positives(self) -> int:
        """Matched detection queries plus track slots that have an object."""
        return int(self.det_query_idx.numel() + (self.track_gt_idx >= 0).sum())


@dataclass(frozen=True)
class HybridTargets:
    s: DecoderTargets  # S-decoder: detections one-to-one to new-born objects
    c: DecoderTargets | None  # C-decoder: detections one-to-many to persistent objects; None if not run
    newborn: torch.Tensor  # (G,) bool
    persistent: torch.Tensor  # (G,) bool


@dataclass(frozen=True)
class CostWeights:
    cls: float = CLASS_COST_WEIGHT
    box: float = BOX_COST_WEIGHT
    box_dims: tuple[float, ...] = DEFAULT_CODE_WEIGHTS


def _match_subset(
    cost: torch.Tensor, columns: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Match queries to the objects in `columns` only; returns (query_idx, gt_idx, cost) in full indexing."""
    sub = cost[:, columns]
    query_idx, sub_idx = one_to_many(sub, k) if k > 1 else hungarian(sub)
    return query_idx, columns[sub_idx], sub[query_idx, sub_idx]


def _detection_targets(
    logits: torch.Tensor,
    code: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_code: torch.Tensor,
    columns: torch.Tensor,
    track_gt_idx: torch.Tensor,
    k: int,
    gmm_filter: bool,
    weights: CostWeights,
) -> DecoderTargets:
    cost = matching_cost(logits, code, gt_labels, gt_code, weights.cls, weights.box, weights.box_dims)
    query_idx, gt_idx, pair_cost = _match_subset(cost, columns, k)
    num_candidates = int(query_idx.numel())
    if gmm_filter:
        keep = keep_mask(pair_cost)
        query_idx, gt_idx, pair_cost = query_idx[keep], gt_idx[keep], pair_cost[keep]
    return DecoderTargets(query_idx, gt_idx, pair_cost, track_gt_idx, num_candidates)


def hybrid_assignments(
    det_logits: torch.Tensor,
    det_code: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_code: torch.Tensor,
    gt_instance_ids: IdsLike,
    track_instance_ids: IdsLike,
    c_det_logits: torch.Tensor | None = None,
    c_det_code: torch.Tensor | None = None,
    *,
    one_to_many: bool = True,
    k: int = DEFAULT_K,
    gmm_filter: bool = True,
    weights: CostWeights | None = None,
) -> HybridTargets:
    """SynCL's task-specific hybrid assignment for one frame.

    det_logits (Qd, C) and det_code (Qd, 10) are the S-decoder's detection-query
    outputs; c_det_* the C-decoder's (leave them None when the C-decoder is off).
    gt_code is `BoxCoder.encode(gt_boxes)`; track_instance_ids gives the instance
    id each track slot follows (-1 / None for a free slot). Track slots get their
    objects by id in both decoders. `one_to_many=False` makes the C-decoder's
    detection matching one-to-one (k=1); `gmm_filter` thins its pairs with the
    Gaussian-mixture threshold. The S-decoder's one-to-one pairs are never filtered.
    """
    weights = weights or CostWeights()
    device = det_logits.device
    gt_ids = _ids(gt_instance_ids, device)
    gt_labels = gt_labels.to(device)
    gt_code = gt_code.to(device=device, dtype=det_code.dtype)
    newborn, persistent = split_newborn_persistent(gt_ids, track_instance_ids)
    track_gt_idx = assign_tracks(track_instance_ids, gt_ids)
    newborn_cols = newborn.nonzero().flatten()
    s = _detection_targets(
        det_logits, det_code, gt_labels, gt_code, newborn_cols, track_gt_idx, 1, False, weights
    )
    c = None
    if c_det_logits is not None and c_det_code is not None:
        c_k = k if one_to_many else 1
        c = _detection_targets(
            c_det_logits,
            c_det_code,
            gt_labels,
            gt_code,
            persistent.nonzero().flatten(),
            track_gt_idx,
            c_k,
            gmm_filter,
            weights,
        )
        c = replace(
            c,
            ignore_query_idx=_newborn_candidates(
                c_det_logits, c_det_code, gt_labels, gt_code, newborn_cols, c, c_k, weights
            ),
        )
    return HybridTargets(s=s, c=c, newborn=newborn, persistent=persistent)


def _newborn_candidates(
    logits: torch.Tensor,
    code: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_code: torch.Tensor,
    newborn_cols: torch.Tensor,
    matched: DecoderTargets,
    k: int,
    weights: CostWeights,
) -> torch.Tensor:
    """C-decoder detection queries that the one-to-many matching gives to new-born objects
    (and not already to a persistent one): ignored by the C-decoder's loss."""
    if newborn_cols.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=logits.device)
    cost = matching_cost(logits, code, gt_labels, gt_code, weights.cls, weights.box, weights.box_dims)
    query_idx, _, _ = _match_subset(cost, newborn_cols, k)
    taken = torch.isin(query_idx, matched.det_query_idx.to(query_idx.device))
    return query_idx[~taken]


def assign_births(
    logits: torch.Tensor,
    code: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_code: torch.Tensor,
    newborn: torch.Tensor,
    max_distance: float,
) -> torch.Tensor:
    """The object each newly born track follows: (B,) gt index, or -1 for a false track.

    ``logits`` (B, C) and ``code`` (B, 10) are the outputs of the detection rows that the runtime
    rule made into tracks; ``newborn`` (G,) marks the objects no track follows. Born rows and
    new-born objects are matched one-to-one with the matching cost, and a pair whose centers lie
    farther apart than ``max_distance`` (0: no limit) is no pair. Assigning identities among the
    births themselves, rather than from the loss's matching over every query, keeps a confident
    detection that sits on an object from becoming a track that is taught "no object" only because
    a less confident query had the cheaper box.
    """
    out = torch.full((logits.shape[0],), NO_MATCH, dtype=torch.long)
    columns = newborn.nonzero().flatten().cpu()
    if logits.shape[0] == 0 or columns.numel() == 0:
        return out
    cost = matching_cost(logits, code, gt_labels, gt_code.to(code.dtype))
    rows, gt_idx, _ = _match_subset(cost.cpu(), columns, 1)
    if max_distance > 0:
        gap = (code[rows, :2].cpu() - gt_code[gt_idx, :2].cpu()).norm(dim=1)
        rows, gt_idx = rows[gap <= max_distance], gt_idx[gap <= max_distance]
    out[rows] = gt_idx
    return out
