import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from syncl_ros.training.syncl.query_filter import filter_pairs, gmm_threshold, keep_mask


def bimodal(seed: int = 0) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(1.0, 0.1, 40), rng.normal(10.0, 0.5, 25)])


def test_threshold_is_the_mean_of_the_cheap_mode() -> None:
    costs = bimodal()
    threshold = gmm_threshold(costs)
    assert threshold is not None
    assert threshold == pytest.approx(costs[:40].mean(), abs=0.05)


def test_threshold_is_deterministic_and_accepts_tensors() -> None:
    costs = bimodal(3)
    assert gmm_threshold(costs) == gmm_threshold(costs)
    assert gmm_threshold(torch.from_numpy(costs).float()) == pytest.approx(gmm_threshold(costs), abs=1e-4)


def test_filter_drops_the_costly_mode() -> None:
    costs = torch.from_numpy(bimodal(1)).float()
    query_idx = torch.arange(len(costs))
    gt_idx = query_idx % 7
    kept_q, kept_g = filter_pairs(query_idx, gt_idx, costs)
    assert 0 < len(kept_q) < 40
    assert (kept_q < 40).all(), "a pair from the costly mode survived"
    assert torch.equal(kept_g, kept_q % 7), "pairs were taken apart"
    threshold = gmm_threshold(costs)
    assert threshold is not None and (costs[kept_q] <= threshold).all()
    assert int(costs.argmin()) in kept_q.tolist()


@pytest.mark.parametrize(
    "costs",
    [[], [3.0], [1.0, 9.0], [1.0, 5.0, 9.0], [4.0] * 10, [2.0, 2.0 + 1e-9, 2.0, 2.0]],
)
def test_tiny_or_degenerate_input_keeps_everything(costs: list[float]) -> None:
    t = torch.tensor(costs)
    assert gmm_threshold(t) is None
    assert keep_mask(t).all() and keep_mask(t).shape == t.shape
    idx = torch.arange(len(costs))
    kept_q, kept_g = filter_pairs(idx, idx, t)
    assert torch.equal(kept_q, idx) and torch.equal(kept_g, idx)


def test_non_finite_costs_neither_crash_nor_survive() -> None:
    costs = torch.from_numpy(bimodal(2)).float()
    costs[[3, 50]] = torch.tensor([float("nan"), float("inf")])
    mask = keep_mask(costs)
    assert not mask[3] and not mask[50] and mask.any()


def test_filter_pairs_checks_shapes() -> None:
    with pytest.raises(ValueError):
        filter_pairs(torch.arange(3), torch.arange(2), torch.rand(3))
