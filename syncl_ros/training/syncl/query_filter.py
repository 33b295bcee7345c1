"""Dynamic query filtering: drop poor (query, object) pairs from the one-to-many matching.

One-to-many matching hands every object up to k detection queries, and when
queries outnumber good candidates some of those pairs are poor. SynCL fits a
two-component Gaussian mixture to the matching costs of the candidate pairs and
takes the mean of the lower-cost component as an adaptive threshold; costlier
pairs are dropped (the queries become unmatched, i.e. negatives). The threshold
follows the cost distribution as training sharpens the predictions, where a
fixed one would not.

When the mixture cannot say anything (too few pairs, (almost) equal costs, a
failed fit) every pair is kept.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

MIN_PAIRS = 4  # below this a two-component fit is meaningless
RANDOM_STATE = 0  # fixed so the same costs always give the same threshold
_MIN_STD = 1e-6  # costs spread less than this are one cluster


def _finite_costs(costs: ArrayLike | torch.Tensor) -> NDArray[np.float64]:
    if isinstance(costs, torch.Tensor):
        costs = costs.detach().to(torch.float64).cpu().numpy()
    values = np.asarray(costs, dtype=np.float64).reshape(-1)
    finite: NDArray[np.float64] = values[np.isfinite(values)]
    return finite


def gmm_threshold(costs: ArrayLike | torch.Tensor, min_pairs: int = MIN_PAIRS) -> float | None:
    """Mean of the lower-cost component of a 2-component Gaussian mixture over the costs.

    None when there is nothing to separate: fewer than `min_pairs` finite costs,
    (near) zero spread, or a fit that fails.
    """
    values = _finite_costs(costs)
    if values.size < max(min_pairs, 2) or values.std() < _MIN_STD:
        return None
    # k-means++ seeding instead of a full k-means run: a fit takes 7 ms instead of 24 ms for a
    # frame's ~100 pairs (it runs per decoder layer and frame), thresholds within 0.005
    gmm = GaussianMixture(n_components=2, init_params="k-means++", random_state=RANDOM_STATE)
    try:
        with warnings.catch_warnings():
            # A fit that stops at max_iter still has usable means.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(values.reshape(-1, 1))
    except (ValueError, np.linalg.LinAlgError):
        return None
    low = float(np.min(gmm.means_))
    return low if np.isfinite(low) else None


def keep_mask(costs: torch.Tensor, min_pairs: int = MIN_PAIRS) -> torch.Tensor:
    """(N,) bool: which pairs survive the filter (cost at most the threshold; all if there is none).

    The lower component's mean is a weighted average of the costs, so at least the
    cheapest pair always survives.
    """
    threshold = gmm_threshold(costs, min_pairs)
    if threshold is None:
        return torch.ones(costs.shape, dtype=torch.bool, device=costs.device)
    return costs.detach() <= threshold


def filter_pairs(
    query_idx: torch.Tensor, gt_idx: torch.Tensor, costs: torch.Tensor, min_pairs: int = MIN_PAIRS
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (query_idx, gt_idx) pairs whose matching cost passes the Gaussian-mixture threshold."""
    if not query_idx.shape == gt_idx.shape == costs.shape:
        raise ValueError("query_idx, gt_idx and costs must have the same shape")
    keep = keep_mask(costs, min_pairs)
    return query_idx[keep], gt_idx[keep]
