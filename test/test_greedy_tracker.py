"""The tracking-by-detection baseline: greedy center-distance association."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from syncl_ros.classes import LABEL_OF, NUM_CLASSES
from syncl_ros.geometry import Transform
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.config import GreedyConfig, TrackerConfig
from syncl_ros.tracking.greedy import GreedyTracker
from syncl_ros.tracking.interface import DecoderOutputs, Track

SLOTS, DIM, QUERIES = 4, 8, 6
NETWORK = ModelConfig(num_slots=SLOTS, embed_dim=DIM)
STEP_NS = 500_000_000


def tracker(**settings: Any) -> GreedyTracker:
    """A greedy tracker; ``greedy`` entries go to GreedyConfig, the rest to TrackerConfig."""
    greedy = GreedyConfig(**settings.pop("greedy", {}))
    return GreedyTracker(TrackerConfig(greedy=greedy, **settings), NETWORK)


def outputs(dets: list[tuple[str, float, list[float]]]) -> DecoderOutputs:
    """Detection rows (class, score, box); every other row scores 0."""
    n = max(QUERIES, len(dets)) + SLOTS
    scores = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    boxes = np.zeros((n, 9))
    boxes[:, 3:6] = 1.0
    for i, (name, score, box) in enumerate(dets):
        scores[i, LABEL_OF[name]] = score
        boxes[i] = box
    return DecoderOutputs(
        scores, boxes, np.full((n, 3), 0.5, dtype=np.float32), np.zeros((n, DIM), dtype=np.float32)
    )


def car(x: float, y: float, vx: float = 0.0, vy: float = 0.0) -> list[float]:
    return [x, y, 0.0, 4.0, 2.0, 1.5, 0.0, vx, vy]


def step(
    tracker: GreedyTracker,
    frame: int,
    dets: list[tuple[str, float, list[float]]],
    pose: Transform | None = None,
) -> list[Track]:
    slots = tracker.prepare(frame * STEP_NS, pose or Transform.identity())
    assert not slots.mask.any(), "the network must only detect"
    return tracker.update(outputs(dets))


def test_moving_object_keeps_its_id_and_new_objects_get_new_ids() -> None:
    t = tracker()
    first = step(t, 0, [("car", 0.9, car(10, 0, vx=10)), ("pedestrian", 0.8, [5, 5, 0, 1, 1, 2, 0, 0, 0])])
    # 5 m further after 0.5 s: explained by the velocity, so the same car.
    second = step(t, 1, [("car", 0.9, car(15, 0, vx=10)), ("car", 0.7, car(-20, 0))])
    ids = {tr.class_name: tr.track_id for tr in first}
    assert second[0].track_id == ids["car"]
    assert second[1].track_id not in {tr.track_id for tr in first}
    assert second[0].hits == 2 and second[0].age == 1


def test_a_crowd_of_moving_objects_keeps_its_ids() -> None:
    # 100 cars 6 m apart on a grid, all driving 8 m/s at once: each step moves a car 4 m, more than
    # halfway to its neighbour's old place, so only the motion model matches them.
    grid = [(6.0 * (k % 10), 6.0 * (k // 10)) for k in range(100)]
    t = tracker(greedy={"max_detections": 100})
    first = step(t, 0, [("car", 0.9, car(x, y, vx=8.0)) for x, y in grid])
    for frame in range(1, 6):
        later = step(t, frame, [("car", 0.9, car(x + 4.0 * frame, y, vx=8.0)) for x, y in grid])
        assert [tr.track_id for tr in later] == [tr.track_id for tr in first]
    assert t.num_live == 100


def test_class_and_distance_gate_the_match() -> None:
    t = tracker()
    (a,) = step(t, 0, [("car", 0.9, car(0, 0))])
    (b,) = step(t, 1, [("truck", 0.9, [0, 0, 0, 8, 2.5, 3, 0, 0, 0])])
    (c,) = step(t, 2, [("car", 0.9, car(4.5, 0))])  # 4.5 m from the car, limit 4 m
    assert len({a.track_id, b.track_id, c.track_id}) == 3


def test_best_score_claims_the_track_first() -> None:
    t = tracker()
    (a,) = step(t, 0, [("car", 0.9, car(0, 0))])
    later = step(t, 1, [("car", 0.3, car(0.5, 0)), ("car", 0.8, car(1.5, 0))])
    by_score = {round(tr.score, 1): tr.track_id for tr in later}
    assert by_score[0.8] == a.track_id and by_score[0.3] != a.track_id


def test_a_missed_track_coasts_for_max_age_frames_then_ends() -> None:
    t = tracker(greedy={"max_age": 2})
    (a,) = step(t, 0, [("car", 0.9, car(0, 0, vx=2))])
    assert step(t, 1, []) == [] and step(t, 2, []) == []  # coasting tracks are not reported
    (b,) = step(t, 3, [("car", 0.9, car(3, 0, vx=2))])  # predicted at 3 m after 1.5 s
    assert b.track_id == a.track_id
    for frame in (4, 5, 6):
        step(t, frame, [])
    (c,) = step(t, 7, [("car", 0.9, car(11, 0, vx=2))])
    assert c.track_id != a.track_id


def test_a_coasting_track_is_reported_at_its_prediction_with_a_decayed_score() -> None:
    t = tracker(greedy={"max_age": 2, "coast_score_decay": 0.5, "measured_velocity": 1.0})
    step(t, 0, [("car", 0.9, car(0, 0)), ("car", 0.9, car(0, 50))], Transform.from_xy_yaw(0, 0, 0))
    # The first car moves 1 m per frame (2 m/s, measured); the second is seen once only.
    (first, _) = step(
        t, 1, [("car", 0.8, car(1, 0)), ("car", 0.7, car(50, 50))], Transform.from_xy_yaw(0, 0, 0)
    )
    # Both missed; the ego drove 5 m forward: the first car is reported at world x 2 m, so at
    # -3 m in the current frame, with its velocity, its last score halved and one frame missed;
    # the twice-unconfirmed tracks are not reported.
    (coast,) = step(t, 2, [], Transform.from_xy_yaw(5, 0, 0))
    assert coast.track_id == first.track_id and coast.frames_since_update == 1
    assert coast.score == pytest.approx(0.4)
    np.testing.assert_allclose(coast.box[[0, 1, 7, 8]], [-3, 0, 2, 0], atol=1e-9)
    (again,) = step(t, 3, [], Transform.from_xy_yaw(5, 0, 0))
    assert again.score == pytest.approx(0.2) and again.box[0] == pytest.approx(-2)
    assert step(t, 4, []) == []  # ended after max_age frames


def test_matching_happens_in_the_world_frame() -> None:
    """A parked car seen from a car that drove 10 m forward is the same car."""
    t = tracker()
    (a,) = step(t, 0, [("car", 0.9, car(20, 0))], Transform.from_xy_yaw(0, 0, 0))
    (b,) = step(t, 1, [("car", 0.9, car(10, 0))], Transform.from_xy_yaw(10, 0, 0))
    assert b.track_id == a.track_id
    np.testing.assert_allclose(b.box[:2], [10, 0])  # reported in the current model frame


def test_low_scores_non_tracking_classes_and_non_finite_rows_are_ignored() -> None:
    t = tracker(greedy={"score": 0.2})
    dets = [
        ("car", 0.1, car(0, 0)),
        ("barrier", 0.9, car(5, 0)),
        ("car", 0.9, car(float("nan"), 0)),
    ]
    assert step(t, 0, dets) == []


def test_a_weak_detection_continues_an_unclaimed_track_but_starts_none() -> None:
    t = tracker(greedy={"score": 0.4, "update_score": 0.2})
    (first,) = step(t, 0, [("car", 0.9, car(0, 0))])
    # The car scores 0.3 for a frame: it continues its track, reported at its own score; a weak
    # detection far from any track starts nothing.
    reported = step(t, 1, [("car", 0.3, car(0.5, 0)), ("car", 0.3, car(30, 0))])
    assert [(tr.track_id, round(tr.score, 3)) for tr in reported] == [(first.track_id, 0.3)]
    assert t.num_live == 1
    # A confident detection claims first: the weak one beside it finds no free track.
    both = step(t, 2, [("car", 0.35, car(0.4, 0)), ("car", 0.8, car(0.6, 0))])
    assert [(tr.track_id, round(tr.score, 3)) for tr in both] == [(first.track_id, 0.8)]


@pytest.mark.parametrize("update_score", [None, 0.5])
def test_without_a_weaker_update_score_weak_detections_are_ignored(update_score: float | None) -> None:
    t = tracker(greedy={"score": 0.4, "update_score": update_score})
    step(t, 0, [("car", 0.9, car(0, 0))])
    assert step(t, 1, [("car", 0.3, car(0.5, 0))]) == []
    with pytest.raises(ValueError, match="update_score"):
        GreedyConfig(update_score=1.5)


def walker(x: float) -> list[float]:
    return [x, 0, 0, 0.6, 0.6, 1.7, 0, 0, 0]  # a one-frame detector's box: no velocity


def walker_ids(**settings: Any) -> list[int]:
    """Track ids of a pedestrian at 1.8 m/s: 0.9 m per frame (within the 1 m gate), unseen at
    frame 2, then 1.8 m on; the last report's velocity is checked when it is measured."""
    frames = {0: 0.0, 1: 0.9, 3: 2.7}
    t = tracker(**settings)
    seen = []
    for f in range(4):
        dets = [("pedestrian", 0.9, walker(frames[f]))] if f in frames else []
        seen += step(t, f, dets)
    if t.config.greedy_measured_velocity == 1.0:
        np.testing.assert_allclose(seen[-1].box[7:], [1.8, 0.0], atol=1e-9)  # measured, reported
    return [tr.track_id for tr in seen]


def test_measured_velocity_carries_a_track_over_a_missed_frame() -> None:
    assert len(set(walker_ids(measured_velocity=1.0))) == 1, "measured motion predicts the walker"
    assert len(set(walker_ids(measured_velocity=0.0))) == 2, "the detections' zero velocity loses it"


def test_the_greedy_trackers_own_velocity_share_overrides_the_shared_one() -> None:
    own_on = walker_ids(measured_velocity=0.0, greedy={"measured_velocity": 1.0})
    own_off = walker_ids(measured_velocity=1.0, greedy={"measured_velocity": 0.0})
    assert (len(set(own_on)), len(set(own_off))) == (1, 2)
    with pytest.raises(ValueError, match=r"greedy\.measured_velocity"):
        GreedyConfig(measured_velocity=1.5)


def test_a_backward_jump_or_a_long_gap_starts_over_and_ids_keep_counting() -> None:
    t = tracker(reset_gap_s=3.0)
    (a,) = step(t, 4, [("car", 0.9, car(0, 0))])
    (b,) = step(t, 2, [("car", 0.9, car(0, 0))])  # a bag played again from an earlier time
    assert (t.resets, t.last_reset_reason) == (1, "backward jump") and b.track_id > a.track_id
    (c,) = step(t, 12, [("car", 0.9, car(0, 0))])  # 5 s later: the same place, but no longer known
    assert (t.resets, t.last_reset_reason) == (2, "gap") and c.track_id > b.track_id
    t.reset()
    assert (t.resets, t.last_reset_reason, t.num_live) == (3, "requested", 0)


def test_counters_for_dropped_and_non_finite_detections() -> None:
    t = tracker(greedy={"max_detections": 1})
    step(t, 0, [("car", 0.9, car(0, 0)), ("car", 0.8, car(20, 0)), ("car", 0.9, car(float("inf"), 0))])
    assert (t.dropped_births, t.nonfinite_rows, t.num_live) == (1, 1, 1)
    # No duplicate check and no fixed table: a second object on the same spot is its own track.
    step(t, 1, [("pedestrian", 0.9, car(0, 0))])
    assert (t.duplicate_births, t.full_table_frames, t.num_live) == (0, 0, 2)


def test_the_factory_builds_the_method_a_config_names() -> None:
    from syncl_ros.tracking.factory import make_tracker
    from syncl_ros.tracking.query_tracker import QueryTracker

    assert isinstance(make_tracker(TrackerConfig(), NETWORK), QueryTracker)
    assert isinstance(make_tracker(TrackerConfig(method="greedy"), NETWORK), GreedyTracker)


def test_outputs_without_room_for_the_slot_rows_are_refused() -> None:
    import pytest

    t = tracker()
    t.prepare(0, Transform.identity())
    n = SLOTS - 1
    f32 = np.float32
    short = DecoderOutputs(
        np.zeros((n, NUM_CLASSES), f32), np.zeros((n, 9)), np.zeros((n, 3), f32), np.zeros((n, DIM), f32)
    )
    with pytest.raises(ValueError, match=f"{n} rows cannot hold the {SLOTS} slot rows"):
        t.update(short)
