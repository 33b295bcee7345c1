import itertools
import math

import pytest
import torch

from syncl_ros.training.syncl.matching import (
    CostWeights,
    assign_tracks,
    box_cost,
    class_cost,
    hungarian,
    hybrid_assignments,
    matching_cost,
    one_to_many,
    split_newborn_persistent,
)


def brute_force_one_to_one(cost: torch.Tensor) -> float:
    q, g = cost.shape
    if q >= g:
        rows_options = itertools.permutations(range(q), g)
        return min(sum(cost[rows[j], j].item() for j in range(g)) for rows in rows_options)
    cols_options = itertools.permutations(range(g), q)
    return min(sum(cost[i, cols[i]].item() for i in range(q)) for cols in cols_options)


def brute_force_one_to_many(cost: torch.Tensor, k: int) -> float:
    """Cheapest assignment of min(Q, k·G) pairs with ≤ k queries per object, by enumeration."""
    q, g = cost.shape
    size = min(q, k * g)
    best = math.inf
    for choice in itertools.product(range(-1, g), repeat=q):  # -1: query left unmatched
        used = [c for c in choice if c >= 0]
        if len(used) != size or any(used.count(j) > k for j in range(g)):
            continue
        best = min(best, sum(cost[i, c].item() for i, c in enumerate(choice) if c >= 0))
    return best


def pair_total(cost: torch.Tensor, query_idx: torch.Tensor, gt_idx: torch.Tensor) -> float:
    return cost[query_idx, gt_idx].sum().item()


# -- costs ------------------------------------------------------------------------


def test_class_cost_matches_elementwise_focal_formula() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 1.5]])
    labels = torch.tensor([2, 0])
    cost = class_cost(logits, labels)
    assert cost.shape == (2, 2)
    for q in range(2):
        for g in range(2):
            p = 1.0 / (1.0 + math.exp(-logits[q, labels[g]].item()))
            pos = -0.25 * (1 - p) ** 2 * math.log(p + 1e-8)
            neg = -0.75 * p**2 * math.log(1 - p + 1e-8)
            assert cost[q, g].item() == pytest.approx(pos - neg, rel=1e-5, abs=1e-6)


def test_class_cost_prefers_the_confident_class() -> None:
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    cost = class_cost(logits, torch.tensor([0, 1]))
    assert cost[0, 0] < cost[0, 1] and cost[1, 1] < cost[1, 0]


def test_box_cost_is_weighted_l1_and_ignores_unknown_targets() -> None:
    pred = torch.randn(4, 10)
    gt = torch.randn(3, 10)
    w = torch.tensor([1.0] * 8 + [0.2, 0.2])
    expected = ((pred[:, None] - gt[None]).abs() * w).sum(-1)
    torch.testing.assert_close(box_cost(pred, gt, w), expected)
    torch.testing.assert_close(box_cost(pred, gt), (pred[:, None] - gt[None]).abs().sum(-1))
    gt_nan = gt.clone()
    gt_nan[1, 8:] = float("nan")
    cost = box_cost(pred, gt_nan, w)
    assert torch.isfinite(cost).all()
    torch.testing.assert_close(cost[:, 1], ((pred[:, :8] - gt[1, :8]).abs()).sum(-1))


def test_matching_cost_combines_with_weights() -> None:
    logits, pred, gt = torch.randn(5, 10), torch.randn(5, 10), torch.randn(3, 10)
    labels = torch.tensor([0, 4, 9])
    dims = (1.0,) * 10
    expected = 2.0 * class_cost(logits, labels) + 0.25 * box_cost(pred, gt, dims)
    torch.testing.assert_close(matching_cost(logits, pred, labels, gt, box_dim_weights=dims), expected)
    only_box = matching_cost(logits, pred, labels, gt, class_weight=0.0, box_weight=1.0, box_dim_weights=dims)
    torch.testing.assert_close(only_box, box_cost(pred, gt))


# -- assignment -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (1, 4), (6, 1)])
def test_hungarian_equals_brute_force(shape: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        cost = torch.rand(shape, generator=gen) * 10
        q_idx, g_idx = hungarian(cost)
        assert q_idx.dtype == g_idx.dtype == torch.long
        assert len(q_idx) == min(shape)
        assert len(set(q_idx.tolist())) == len(q_idx) and len(set(g_idx.tolist())) == len(g_idx)
        assert pair_total(cost, q_idx, g_idx) == pytest.approx(brute_force_one_to_one(cost), rel=1e-5)


@pytest.mark.parametrize("shape", [(0, 3), (4, 0), (0, 0)])
def test_hungarian_handles_empty(shape: tuple[int, int]) -> None:
    q_idx, g_idx = hungarian(torch.rand(shape))
    assert q_idx.numel() == g_idx.numel() == 0 and q_idx.dtype == torch.long


def test_hungarian_survives_non_finite_costs() -> None:
    cost = torch.tensor([[1.0, float("inf")], [float("nan"), 2.0]])
    q_idx, g_idx = hungarian(cost)
    assert list(zip(q_idx.tolist(), g_idx.tolist(), strict=True)) == [(0, 0), (1, 1)]


@pytest.mark.parametrize(("q", "g", "k"), [(6, 2, 2), (5, 2, 3), (4, 1, 5), (3, 2, 2), (6, 3, 1)])
def test_one_to_many_is_optimal_and_respects_capacities(q: int, g: int, k: int) -> None:
    gen = torch.Generator().manual_seed(q * 10 + g + k)
    for _ in range(4):
        cost = torch.rand(q, g, generator=gen) * 5
        q_idx, g_idx = one_to_many(cost, k)
        assert len(set(q_idx.tolist())) == len(q_idx), "a query took two objects"
        assert torch.bincount(g_idx, minlength=g).max().item() <= k
        assert len(q_idx) == min(q, k * g)
        assert pair_total(cost, q_idx, g_idx) == pytest.approx(brute_force_one_to_many(cost, k), rel=1e-5)


def test_one_to_many_with_k1_is_hungarian() -> None:
    cost = torch.rand(7, 4, generator=torch.Generator().manual_seed(3))
    for a, b in zip(one_to_many(cost, 1), hungarian(cost), strict=True):
        assert torch.equal(a, b)


def test_one_to_many_gives_each_object_its_k_cheapest_when_uncontested() -> None:
    # Queries 0-2 are close to object 0, 3-5 to object 1; plenty of queries.
    cost = torch.full((8, 2), 10.0)
    cost[:3, 0] = torch.tensor([0.1, 0.2, 0.3])
    cost[3:6, 1] = torch.tensor([0.1, 0.2, 0.3])
    q_idx, g_idx = one_to_many(cost, 3)
    assert sorted(zip(q_idx.tolist(), g_idx.tolist(), strict=True)) == [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 1),
        (4, 1),
        (5, 1),
    ]


def test_one_to_many_edge_cases() -> None:
    assert one_to_many(torch.rand(5, 0), 5)[0].numel() == 0
    assert one_to_many(torch.rand(0, 3), 5)[0].numel() == 0
    with pytest.raises(ValueError):
        one_to_many(torch.rand(2, 2), 0)


# -- identities -------------------------------------------------------------------


def test_split_newborn_persistent() -> None:
    newborn, persistent = split_newborn_persistent(torch.tensor([7, 3, 9, 12]), [3, -1, 12, 40, None])
    assert newborn.tolist() == [True, False, True, False]
    assert persistent.tolist() == [False, True, False, True]
    newborn, persistent = split_newborn_persistent([5, 6], [])
    assert newborn.all() and not persistent.any()
    newborn, persistent = split_newborn_persistent(torch.empty(0, dtype=torch.long), [1])
    assert newborn.numel() == persistent.numel() == 0


def test_assign_tracks_by_identity() -> None:
    gt_ids = torch.tensor([11, 22, 33])
    # Slot 0 follows 22, slot 1 is free, slot 2 follows a vanished object, slot 3 follows 11.
    assert assign_tracks(torch.tensor([22, -1, 99, 11]), gt_ids).tolist() == [1, -1, -1, 0]
    assert assign_tracks([None, 33], gt_ids).tolist() == [-1, 2]
    assert assign_tracks([4, -1], torch.empty(0, dtype=torch.long)).tolist() == [-1, -1]
    assert assign_tracks([], gt_ids).numel() == 0
    with pytest.raises(ValueError):
        assign_tracks([1], [5, 5])


# -- hybrid targets ---------------------------------------------------------------


def _frame(num_queries: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    gt_code = torch.randn(6, 10, generator=gen) * 5
    return {
        "gt_code": gt_code,
        "gt_labels": torch.tensor([0, 1, 2, 0, 8, 9]),
        "gt_ids": torch.tensor([100, 101, 102, 103, 104, 105]),
        "logits": torch.randn(num_queries, 10, generator=gen),
        "code": gt_code[torch.arange(num_queries) % 6] + torch.randn(num_queries, 10, generator=gen),
    }


def test_hybrid_assignments_routes_objects_to_the_right_decoder() -> None:
    f = _frame()
    tracks = torch.tensor([101, -1, 104, 555])  # 555 has left the scene
    out = hybrid_assignments(
        f["logits"],
        f["code"],
        f["gt_labels"],
        f["gt_code"],
        f["gt_ids"],
        tracks,
        f["logits"],
        f["code"],
        k=5,
        gmm_filter=False,
    )
    assert out.persistent.nonzero().flatten().tolist() == [1, 4]
    # S-decoder: one detection per new-born object, none for the persistent ones.
    assert sorted(out.s.det_gt_idx.tolist()) == [0, 2, 3, 5]
    assert len(set(out.s.det_query_idx.tolist())) == 4
    assert out.s.track_gt_idx.tolist() == [1, -1, 4, -1]
    # C-decoder: exactly k detections for each persistent object (queries are plentiful).
    assert out.c is not None
    assert sorted(out.c.det_gt_idx.tolist()) == [1] * 5 + [4] * 5
    assert len(set(out.c.det_query_idx.tolist())) == 10
    assert out.c.track_gt_idx.tolist() == [1, -1, 4, -1]
    assert out.c.num_candidates == 10
    cost = matching_cost(f["logits"], f["code"], f["gt_labels"], f["gt_code"])
    torch.testing.assert_close(out.c.det_cost, cost[out.c.det_query_idx, out.c.det_gt_idx])


def test_hybrid_assignments_switches() -> None:
    f = _frame()
    args = (f["logits"], f["code"], f["gt_labels"], f["gt_code"], f["gt_ids"], [100, 102, 103])
    no_c = hybrid_assignments(*args)
    assert no_c.c is None
    one = hybrid_assignments(*args, f["logits"], f["code"], one_to_many=False, gmm_filter=False)
    assert one.c is not None and sorted(one.c.det_gt_idx.tolist()) == [0, 2, 3]
    filtered = hybrid_assignments(*args, f["logits"], f["code"], k=5, gmm_filter=True)
    unfiltered = hybrid_assignments(*args, f["logits"], f["code"], k=5, gmm_filter=False)
    assert filtered.c is not None and unfiltered.c is not None
    assert filtered.c.num_candidates == unfiltered.c.num_candidates == 15
    assert 0 < filtered.c.det_query_idx.numel() < 15
    kept = set(zip(filtered.c.det_query_idx.tolist(), filtered.c.det_gt_idx.tolist(), strict=True))
    all_pairs = zip(unfiltered.c.det_query_idx.tolist(), unfiltered.c.det_gt_idx.tolist(), strict=True)
    assert kept <= set(all_pairs)
    assert filtered.c.det_cost.max() <= unfiltered.c.det_cost.max()


def test_hybrid_assignments_without_objects_or_tracks() -> None:
    f = _frame()
    empty_code, empty_labels = torch.empty(0, 10), torch.empty(0, dtype=torch.long)
    out = hybrid_assignments(
        f["logits"], f["code"], empty_labels, empty_code, [], [7, -1], f["logits"], f["code"]
    )
    assert out.s.det_query_idx.numel() == 0 and out.c is not None and out.c.det_query_idx.numel() == 0
    assert out.s.track_gt_idx.tolist() == [-1, -1]
    all_tracked = hybrid_assignments(
        f["logits"],
        f["code"],
        f["gt_labels"],
        f["gt_code"],
        f["gt_ids"],
        f["gt_ids"],
        f["logits"],
        f["code"],
        weights=CostWeights(cls=1.0),
    )
    assert all_tracked.s.det_query_idx.numel() == 0
    assert all_tracked.s.track_gt_idx.tolist() == list(range(6))


def test_hybrid_assignments_with_fewer_queries_than_k_per_object() -> None:
    f = _frame(num_queries=7, seed=1)
    out = hybrid_assignments(
        f["logits"],
        f["code"],
        f["gt_labels"],
        f["gt_code"],
        f["gt_ids"],
        [100, 101, 102],
        f["logits"],
        f["code"],
        k=5,
        gmm_filter=False,
    )
    assert out.c is not None and out.c.det_query_idx.numel() == 7
    assert torch.bincount(out.c.det_gt_idx, minlength=6).max().item() <= 5


def test_c_decoder_ignores_new_born_candidates_instead_of_teaching_no_object() -> None:
    """The C-decoder matches only persistent objects; the queries the same one-to-many matching
    gives to new-born objects are left out of its loss (they once all became "no object")."""
    f = _frame()
    args = (f["logits"], f["code"], f["gt_labels"], f["gt_code"], f["gt_ids"])
    first = hybrid_assignments(*args, [], f["logits"], f["code"], k=5, gmm_filter=False)
    assert first.c is not None and first.c.det_query_idx.numel() == 0
    assert first.c.num_positives == 0
    assert first.c.ignore_query_idx.numel() == 5 * 6  # k candidates for each of the 6 new-born objects
    later = hybrid_assignments(*args, [101, 104], f["logits"], f["code"], k=5, gmm_filter=False)
    assert later.c is not None
    positives = set(later.c.det_query_idx.tolist())
    ignored = set(later.c.ignore_query_idx.tolist())
    assert len(positives) == 10 and len(ignored) == 5 * 4 and not positives & ignored
    assert later.s.ignore_query_idx.numel() == 0  # the S-decoder ignores nothing


def test_births_take_new_born_objects_within_reach_only() -> None:
    from syncl_ros.training.syncl.matching import assign_births

    gt_code = torch.zeros(3, 10)
    gt_code[:, :2] = torch.tensor([[10.0, 0.0], [20.0, 5.0], [30.0, -5.0]])
    code = torch.zeros(3, 10)
    code[:, :2] = torch.tensor([[20.5, 5.0], [9.0, 0.5], [30.2, -5.0]])  # near objects 1, 0, 2
    logits = torch.full((3, 10), 3.0)
    labels = torch.zeros(3, dtype=torch.long)
    newborn = torch.tensor([True, True, False])  # object 2 is followed by a track already
    assert assign_births(logits, code, labels, gt_code, newborn, 2.0).tolist() == [1, 0, -1]
    assert assign_births(logits, code, labels, gt_code, newborn, 0.5).tolist() == [1, -1, -1]
    assert assign_births(logits[:0], code[:0], labels, gt_code, newborn, 2.0).tolist() == []
