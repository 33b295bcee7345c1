"""The detector alone (`syncl track --detections`): each frame's top (query, class) pairs."""

from __future__ import annotations

import numpy as np
import pytest

from syncl_ros.classes import LABEL_OF, NUM_CLASSES
from syncl_ros.geometry import Transform
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.detector_only import DetectorOnly
from syncl_ros.tracking.interface import DecoderOutputs, Track

SLOTS, DIM, QUERIES = 4, 8, 6
NETWORK = ModelConfig(num_slots=SLOTS, embed_dim=DIM)


def outputs(scores: dict[tuple[int, str], float]) -> DecoderOutputs:
    """Detection rows scoring (row, class) -> probability; the slot rows score 0.9 everywhere,
    so a detector that read them would show it."""
    n = QUERIES + SLOTS
    probs = np.zeros((n, NUM_CLASSES), np.float32)
    probs[QUERIES:] = 0.9
    for (row, name), p in scores.items():
        probs[row, LABEL_OF[name]] = p
    boxes = np.zeros((n, 9))
    boxes[:, 0] = np.arange(n)  # a row's x is its index
    boxes[:, 3:6] = 1.0
    return DecoderOutputs(probs, boxes, np.full((n, 3), 0.5, np.float32), np.zeros((n, DIM), np.float32))


def frame(detector: DetectorOnly, scores: dict[tuple[int, str], float], t_ns: int = 0) -> list[Track]:
    slots = detector.prepare(t_ns, Transform.identity())
    assert not slots.mask.any(), "the network must only detect"
    return detector.update(outputs(scores))


def test_the_best_pairs_come_first_and_a_query_may_hold_two_classes() -> None:
    boxes = frame(DetectorOnly(NETWORK, max_boxes=3), {(0, "car"): 0.9, (0, "truck"): 0.6, (2, "bus"): 0.7})
    assert [b.class_name for b in boxes] == ["car", "bus", "truck"]
    assert [b.score for b in boxes] == pytest.approx([0.9, 0.7, 0.6])
    assert [b.box[0] for b in boxes] == [0, 2, 0]  # query 0's box once per class


def test_low_scores_stay_in_up_to_max_boxes() -> None:
    detector = DetectorOnly(NETWORK, max_boxes=5)
    boxes = frame(detector, {(1, "pedestrian"): 0.02})
    assert len(boxes) == 5  # no score threshold: the metrics sweep the score themselves
    assert boxes[0].class_name == "pedestrian" and boxes[0].score == pytest.approx(0.02)
    assert all(b.box[0] < QUERIES for b in boxes), "slot rows are not detections"


def test_only_tracking_classes_are_reported() -> None:
    boxes = frame(DetectorOnly(NETWORK, max_boxes=2), {(0, "barrier"): 0.99, (1, "car"): 0.5})
    assert boxes[0].class_name == "car"
    assert "barrier" not in {b.class_name for b in boxes}


def test_non_finite_rows_are_dropped_and_counted() -> None:
    detector = DetectorOnly(NETWORK, max_boxes=50)
    detector.prepare(0, Transform.identity())
    out = outputs({(0, "car"): 0.9, (1, "car"): 0.8})
    out.boxes[0, 1] = np.nan
    boxes = detector.update(out)
    assert detector.nonfinite_rows == 1
    assert all(b.box[0] != 0 for b in boxes) and boxes[0].score == pytest.approx(0.8)


def test_every_box_is_a_new_id_and_nothing_is_linked() -> None:
    detector = DetectorOnly(NETWORK, max_boxes=2)
    ids = [b.track_id for t in range(3) for b in frame(detector, {(0, "car"): 0.9}, t * 500_000_000)]
    assert len(set(ids)) == len(ids) == 6
    assert detector.num_live == 0 and detector.resets == 0


@pytest.mark.parametrize("max_boxes", [0, 501])
def test_max_boxes_stays_within_the_benchmark_limit(max_boxes: int) -> None:
    with pytest.raises(ValueError, match="max_boxes"):
        DetectorOnly(NETWORK, max_boxes=max_boxes)
