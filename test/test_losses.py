import math

import pytest
import torch

from syncl_ros.training.losses import box_l1_loss, sigmoid_focal_loss

# -- focal loss -------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_focal_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    labels = torch.tensor([1, 2])  # query 0 is class 1, query 1 is background (C = 2)
    a, g = 0.25, 2.0
    p = [[_sigmoid(0.0), _sigmoid(1.0)], [_sigmoid(2.0), _sigmoid(-1.0)]]
    expected = (
        -(1 - a) * p[0][0] ** g * math.log(1 - p[0][0])  # query 0, class 0: negative
        - a * (1 - p[0][1]) ** g * math.log(p[0][1])  # query 0, class 1: positive
        - (1 - a) * p[1][0] ** g * math.log(1 - p[1][0])
        - (1 - a) * p[1][1] ** g * math.log(1 - p[1][1])
    )  # one foreground query: normalizer 1
    assert sigmoid_focal_loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    assert sigmoid_focal_loss(logits, labels, normalizer=4.0).item() == pytest.approx(expected / 4, rel=1e-5)


def test_focal_loss_normalizer_defaults_to_foreground_count() -> None:
    logits = torch.randn(6, 10)
    labels = torch.tensor([0, 3, 10, 10, 5, 10])
    total = sigmoid_focal_loss(logits, labels, normalizer=1.0)
    assert sigmoid_focal_loss(logits, labels).item() == pytest.approx(total.item() / 3, rel=1e-6)
    all_bg = torch.full((6,), 10)
    assert sigmoid_focal_loss(logits, all_bg).item() == pytest.approx(
        sigmoid_focal_loss(logits, all_bg, normalizer=1.0).item()
    )  # no foreground: divide by 1
    with pytest.raises(ValueError):
        sigmoid_focal_loss(logits, torch.tensor([0, 0, 0, 0, 0, 11]))


def test_focal_loss_pushes_the_right_way() -> None:
    logits = torch.zeros(2, 3, requires_grad=True)
    sigmoid_focal_loss(logits, torch.tensor([1, 3])).backward()
    assert logits.grad is not None
    assert logits.grad[0, 1] < 0  # raise the true class
    assert (logits.grad[0, [0, 2]] > 0).all() and (logits.grad[1] > 0).all()  # lower the rest


# -- box L1 ------------------------------------------------------------------------


def test_box_l1_weights_and_normalizer() -> None:
    pred = torch.zeros(2, 10)
    gt = torch.ones(2, 10)
    # Eight dims at weight 1 and two velocity dims at 0.2, for two boxes, divided by 2.
    assert box_l1_loss(pred, gt).item() == pytest.approx(8.4)
    assert box_l1_loss(pred, gt, weights=[1.0] * 10, normalizer=4.0).item() == pytest.approx(5.0)
    only_x = torch.tensor([1.0] + [0.0] * 9)
    gt[1, 0] = 3.0
    assert box_l1_loss(pred, gt, weights=only_x).item() == pytest.approx(2.0)
    assert box_l1_loss(torch.empty(0, 10), torch.empty(0, 10)).item() == 0.0


def test_box_l1_ignores_unknown_velocity_without_nan_gradients() -> None:
    pred = torch.zeros(1, 10, requires_grad=True)
    gt = torch.ones(1, 10)
    gt[0, 8:] = float("nan")
    loss = box_l1_loss(pred, gt)
    loss.backward()
    assert loss.item() == pytest.approx(8.0)
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert (pred.grad[0, 8:] == 0).all() and (pred.grad[0, :8] == -1).all()
