"""Query tracker: track life cycle, motion propagation, resets and robustness."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from syncl_ros.classes import LABEL_OF, NUM_CLASSES
from syncl_ros.config import ConfigError, parse
from syncl_ros.geometry import Transform
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.motion import denormalize_refs, normalize_points
from syncl_ros.tracking.query_tracker import (
    DecoderOutputs,
    FrameChanges,
    QueryTracker,
    Track,
    TrackerConfig,
    duplicate_candidates,
    nearest_pairs,
)

C = 8  # feature width
Q = 6  # detection queries per frame
SEC = 1_000_000_000
CAR, PED, BARRIER = LABEL_OF["car"], LABEL_OF["pedestrian"], LABEL_OF["barrier"]
IDENTITY = Transform.identity()
PC_RANGE = ModelConfig().pc_range

Row = tuple[int, float, Sequence[float]]  # (label, score, box)


def box(x: float = 0.0, y: float = 0.0, vx: float = 0.0, vy: float = 0.0, yaw: float = 0.0) -> list[float]:
    return [x, y, 0.5, 4.0, 2.0, 1.5, yaw, vx, vy]


def make_outputs(
    num_slots: int,
    dets: Sequence[Row] = (),
    slots: dict[int, Row] | None = None,
    q: int = Q,
) -> DecoderOutputs:
    """Decoder outputs with the given detection rows and slot rows; row r's features are all r + 1."""
    n = q + num_slots
    scores = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    boxes = np.tile(np.array(box(), dtype=np.float64), (n, 1))
    embeddings = np.repeat(np.arange(1.0, n + 1.0)[:, None], C, axis=1).astype(np.float32)
    rows = list(enumerate(dets)) + [(q + s, row) for s, row in (slots or {}).items()]
    for r, (label, score, b) in rows:
        scores[r, label] = score
        boxes[r] = b
    refs = np.clip(normalize_points(boxes[:, :3], PC_RANGE), 0.0, 1.0).astype(np.float32)
    return DecoderOutputs(scores=scores, boxes=boxes, refs=refs, embeddings=embeddings)


def network(num_slots: int) -> ModelConfig:
    """The network settings a tracker reads: its slot count, query width C and range PC_RANGE."""
    return ModelConfig(num_slots=num_slots, embed_dim=C)


def tracker(num_slots: int = 4, **overrides: object) -> QueryTracker:
    settings: dict[str, object] = {"output_score": 0.0}
    settings.update(overrides)
    return QueryTracker(TrackerConfig(**settings), network(num_slots), seed=7)  # type: ignore[arg-type]


def step(
    trk: QueryTracker,
    t_s: float,
    dets: Sequence[Row] = (),
    slots: dict[int, Row] | None = None,
    pose: Transform = IDENTITY,
) -> list[Track]:
    trk.prepare(round(t_s * SEC), pose)
    return trk.update(make_outputs(trk.num_slots, dets, slots))


# ------------------------------------------------------------------ config


def test_config_defaults_and_yaml_parse() -> None:
    cfg = parse(TrackerConfig, {"max_missed": 3, "birth_score": 1})
    assert (cfg.max_missed, cfg.birth_score) == (3, 1.0)
    assert TrackerConfig().max_missed == 6
    assert TrackerConfig().duplicate_distance_m == 1.0
    assert parse(TrackerConfig, {"duplicate_distance_m": 0}).duplicate_distance_m == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_missed", True),
        ("birth_score", 1.5),
        ("update_score", math.nan),
        ("max_missed", -1),
        ("measured_velocity", -0.1),
        ("max_outputs", 2.5),
        ("reset_gap_s", 0.0),
        ("duplicate_distance_m", -0.5),
        ("coast_score_decay", 1.5),
        ("duplicate_distance_m", math.inf),
        ("reattach_distance_m", -1.0),
        ("reattach_distance_m", math.nan),
        ("tracking_labels_only", 1),
        ("method", "hungarian"),
    ],
)
def test_config_rejects_bad_values_naming_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"TrackerConfig\.{field}: .*got {re.escape(repr(value))}"):
        TrackerConfig(**{field: value})  # type: ignore[arg-type]


def test_config_error_through_yaml_parser() -> None:
    with pytest.raises(ConfigError, match="birth_score"):
        parse(TrackerConfig, {"birth_score": -0.1})
    with pytest.raises(ConfigError, match="method"):
        parse(TrackerConfig, {"method": "hungarian"})


def test_greedy_settings_parse_nested_and_are_checked() -> None:
    cfg = parse(TrackerConfig, {"method": "greedy", "greedy": {"score": 0.05, "max_age": 2}})
    assert (cfg.method, cfg.greedy.score, cfg.greedy.max_age) == ("greedy", 0.05, 2)
    assert cfg.greedy.distances["pedestrian"] == 1.0  # CenterPoint's, unless given
    with pytest.raises(ConfigError, match=r"greedy\.score"):
        parse(TrackerConfig, {"greedy": {"score": 2.0}})
    one = parse(TrackerConfig, {"greedy": {"distances": {"pedestrian": 2.0}}}).greedy.distances
    assert one["pedestrian"] == 2.0 and one["car"] == 4.0  # the classes not given keep theirs
    with pytest.raises(ConfigError, match=r"greedy\.distances"):
        parse(TrackerConfig, {"greedy": {"distances": {"pedestrain": 2.0}}})  # not a class
    with pytest.raises(ConfigError, match=r"greedy\.distances"):
        parse(TrackerConfig, {"greedy": {"distances": {"car": -1.0}}})


# ------------------------------------------------------------------ life cycle


def test_birth_at_or_above_threshold_only() -> None:
    trk = tracker()
    slots = trk.prepare(0, IDENTITY)
    assert slots.dt_s == 0.0 and not slots.mask.any()
    assert slots.embeddings.shape == (4, C) and slots.embeddings.dtype == np.float32
    np.testing.assert_array_equal(slots.refs, 0.5)
    out = trk.update(make_outputs(4, [(CAR, 0.5, box(1.0)), (CAR, 0.39, box(2.0)), (PED, 0.4, box(3.0))]))
    assert [t.track_id for t in out] == [1, 2]
    first, second = out
    assert (first.label, first.class_name, first.score) == (CAR, "car", 0.5)
    assert (second.label, second.score) == pytest.approx((PED, 0.4))
    assert (first.age, first.hits, first.frames_since_update) == (0, 1, 0)
    np.testing.assert_allclose(first.box, box(1.0))
    assert len(first.uuid) == 16 and uuid.UUID(bytes=first.uuid).version == 4
    assert first.uuid != second.uuid
    assert trk.live_ids == (1, 2) and trk.num_live == 2
    with pytest.raises(KeyError):
        trk.slot_of(3)


def test_births_only_for_tracking_classes_unless_disabled() -> None:
    # Barrier is a detection class but not a tracking class; its high score must not win.
    dets: list[Row] = [(BARRIER, 0.9, box(1.0))]
    assert step(tracker(), 0.0, dets) == []
    out = step(tracker(tracking_labels_only=False), 0.0, dets)
    assert [(t.label, t.score) for t in out] == [pytest.approx((BARRIER, 0.9))]


def test_confirmed_track_takes_new_box_label_and_features() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    slot = trk.slot_of(1)
    out = step(trk, 0.5, slots={slot: (PED, 0.8, box(1.5, 0.2))})
    (t,) = out
    assert (t.track_id, t.label, t.score, t.age, t.hits, t.frames_since_update) == pytest.approx(
        (1, PED, 0.8, 1, 2, 0)
    )
    # The new box, with the velocity the track measured: (0.5, 0.2) m in 0.5 s.
    np.testing.assert_allclose(t.box, box(1.5, 0.2, vx=1.0, vy=0.4), atol=1e-12)
    nxt = trk.prepare(SEC, IDENTITY)
    # Features of the slot's output row (row Q + slot, filled with Q + slot + 1) travel on.
    np.testing.assert_array_equal(nxt.embeddings[slot], Q + slot + 1)
    assert nxt.mask[slot] and nxt.dt_s == pytest.approx(0.5)


def test_measured_velocity_weight_blends_with_the_network() -> None:
    # The network says (2, 0) m/s; the track moved (1, 1) m in 0.5 s, i.e. (2, 2) m/s.
    for weight, expected in ((0.0, [2.0, 0.0]), (0.25, [2.0, 0.5]), (1.0, [2.0, 2.0])):
        trk = tracker(measured_velocity=weight)
        step(trk, 0.0, [(CAR, 0.9, box(10.0, 0.0, vx=2.0))])
        (t,) = step(trk, 0.5, slots={trk.slot_of(1): (CAR, 0.9, box(11.0, 1.0, vx=2.0))})
        np.testing.assert_allclose(t.box[7:], expected, atol=1e-9)


def test_measured_velocity_is_over_ground_under_ego_motion() -> None:
    # The object stands still at world (10, 2) while the ego drives 5 m and turns 90° left:
    # its box moves in the ego frame, yet the measured velocity is zero; the network's (3, 0) is dropped.
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(10.0, 2.0, vx=3.0))])
    pose = Transform.from_xy_yaw(5.0, 0.0, math.pi / 2)
    trk.prepare(round(0.5 * SEC), pose)
    (t,) = trk.update(make_outputs(4, slots={trk.slot_of(1): (CAR, 0.9, box(2.0, -5.0, vx=3.0))}))
    np.testing.assert_allclose(t.box[7:], [0.0, 0.0], atol=1e-9)


def test_measured_velocity_spans_coasted_frames_and_drives_propagation() -> None:
    # Seen at x=0, missed once, seen at x=3 one second later: 3 m/s, which then moves the reference.
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(0.0))])
    slot = trk.slot_of(1)
    step(trk, 0.5, slots={slot: (CAR, 0.1, box())})
    (t,) = step(trk, 1.0, slots={slot: (CAR, 0.9, box(3.0))})
    np.testing.assert_allclose(t.box[7:], [3.0, 0.0], atol=1e-9)
    nxt = trk.prepare(round(1.5 * SEC), IDENTITY)
    np.testing.assert_allclose(denormalize_refs(nxt.refs[slot], PC_RANGE)[:2], [4.5, 0.0], atol=1e-4)


def test_coasting_track_moves_by_velocity_and_keeps_features() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(10.0, 4.0, vx=2.0, vy=-1.0))])
    slot = trk.slot_of(1)
    slots = trk.prepare(round(0.5 * SEC), IDENTITY)
    expected = box(11.0, 3.5, vx=2.0, vy=-1.0)
    np.testing.assert_allclose(
        slots.refs[slot], normalize_points(np.array(expected[:3]), PC_RANGE), atol=1e-6
    )
    # The slot row says "pedestrian at the origin" with a low score: the track must ignore the box.
    (t,) = trk.update(make_outputs(4, slots={slot: (PED, 0.1, box())}))
    assert (t.label, t.score, t.hits, t.frames_since_update, t.age) == pytest.approx((CAR, 0.1, 1, 1, 1))
    np.testing.assert_allclose(t.box, expected, atol=1e-9)
    nxt = trk.prepare(SEC, IDENTITY)
    # Its unconfident output row (filled with Q + slot + 1) is not stored: the birth row 0's features stay.
    np.testing.assert_array_equal(nxt.embeddings[slot], 1.0)
    np.testing.assert_allclose(denormalize_refs(nxt.refs[slot], PC_RANGE)[:2], [12.0, 3.0], atol=1e-4)


def test_track_ends_after_max_missed_plus_one_misses() -> None:
    trk = tracker(max_missed=2)
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    for k in (1, 2):
        (t,) = step(trk, 0.1 * k)
        assert t.frames_since_update == k
    assert step(trk, 0.3) == []
    assert trk.num_live == 0
    slots = trk.prepare(round(0.4 * SEC), IDENTITY)
    assert not slots.mask.any()
    np.testing.assert_array_equal(slots.embeddings, 0.0)
    np.testing.assert_array_equal(slots.refs, 0.5)


def test_a_hit_clears_the_miss_count() -> None:
    trk = tracker(max_missed=1)
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    slot = trk.slot_of(1)
    step(trk, 0.1)
    (t,) = step(trk, 0.2, slots={slot: (CAR, 0.4, box(1.0))})
    assert (t.frames_since_update, t.hits) == (0, 2)
    (t,) = step(trk, 0.3)
    assert t.frames_since_update == 1


def test_ids_are_never_reused() -> None:
    trk = tracker(max_missed=0)
    step(trk, 0.0, [(CAR, 0.9, box(1.0)), (CAR, 0.8, box(2.0))])
    keep = trk.slot_of(1)
    # Track 2 misses once and ends; the new detection gets id 3, possibly in track 2's old slot.
    out = step(trk, 0.1, [(CAR, 0.7, box(3.0))], slots={keep: (CAR, 0.9, box(1.0))})
    assert sorted(t.track_id for t in out) == [1, 3]
    assert trk.live_ids == (1, 3)


# ------------------------------------------------------------------ resets


def test_backward_jump_resets_and_ids_continue() -> None:
    trk = tracker()
    step(trk, 10.0, [(CAR, 0.9, box(1.0)), (CAR, 0.9, box(2.0))])
    slots = trk.prepare(9 * SEC, IDENTITY)
    assert trk.resets == 1 and trk.last_reset_reason == "backward jump"
    assert not slots.mask.any() and slots.dt_s == 0.0
    out = trk.update(make_outputs(4, [(CAR, 0.9, box(5.0))]))
    assert [t.track_id for t in out] == [3]


def test_long_gap_resets_but_gap_at_limit_does_not() -> None:
    trk = tracker(reset_gap_s=3.0)
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    step(trk, 3.0)
    assert trk.resets == 0 and trk.live_ids == (1,)
    slots = trk.prepare(round(6.001 * SEC), IDENTITY)
    assert trk.resets == 1 and trk.last_reset_reason == "gap"
    assert not slots.mask.any()
    out = trk.update(make_outputs(4, [(CAR, 0.9, box(1.0))]))
    assert [t.track_id for t in out] == [2]


def test_equal_timestamps_mean_no_motion() -> None:
    trk = tracker()
    step(trk, 1.0, [(CAR, 0.9, box(1.0, vx=10.0))])
    slots = trk.prepare(SEC, IDENTITY)
    assert trk.resets == 0 and slots.dt_s == 0.0
    (t,) = trk.update(make_outputs(4))
    np.testing.assert_allclose(t.box, box(1.0, vx=10.0))


def test_explicit_reset_counts_and_ids_continue() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    trk.reset()
    assert trk.resets == 1 and trk.last_reset_reason == "requested" and trk.num_live == 0
    # The next frame starts afresh even though time moved backwards.
    out = step(trk, -5.0, [(CAR, 0.9, box(1.0))])
    assert trk.resets == 1
    assert [t.track_id for t in out] == [2]


# ------------------------------------------------------------------ slots and outputs


def test_slot_exhaustion_keeps_the_best_and_counts_the_rest() -> None:
    trk = tracker(num_slots=2)
    scores = [0.5, 0.9, 0.45, 0.8, 0.6]
    out = step(trk, 0.0, [(CAR, s, box(float(i))) for i, s in enumerate(scores)])
    assert [t.score for t in out] == pytest.approx([0.9, 0.8])
    assert [t.box[0] for t in out] == [1.0, 3.0]
    assert trk.dropped_births == 3
    step(trk, 0.1, [(CAR, 0.9, box(9.0))])
    assert trk.dropped_births == 4


def test_full_table_counts_frames_not_rows_and_ignores_duplicates() -> None:
    trk = tracker(num_slots=2)
    step(trk, 0.0, [(CAR, s, box(x)) for s, x in ((0.9, 0.0), (0.8, 10.0), (0.7, 20.0), (0.6, 30.0))])
    assert (trk.full_table_frames, trk.dropped_births) == (1, 2)
    # Both tracks confirmed; the only other confident rows are duplicates of them: no birth wanted.
    live: dict[int, Row] = {0: (CAR, 0.9, box(0.0)), 1: (CAR, 0.9, box(10.0))}
    step(trk, 0.1, [(CAR, 0.8, box(0.5)), (PED, 0.7, box(10.0, 0.3))], slots=live)
    assert (trk.full_table_frames, trk.dropped_births, trk.duplicate_births) == (1, 2, 2)
    step(trk, 0.2, [(CAR, 0.8, box(40.0))], slots=live)
    assert (trk.full_table_frames, trk.dropped_births) == (2, 3)


def test_output_threshold_and_max_outputs_best_first() -> None:
    trk = tracker(num_slots=8, output_score=0.5, max_outputs=3, birth_score=0.3)
    scores = [0.9, 0.5, 0.7, 0.45, 0.6, 0.7]
    out = step(trk, 0.0, [(CAR, s, box(float(i))) for i, s in enumerate(scores)])
    assert [t.score for t in out] == pytest.approx([0.9, 0.7, 0.7])
    # Equal scores: the older (smaller) id first; ids follow birth order, best first.
    assert [t.track_id for t in out] == [1, 2, 3]
    assert trk.num_live == 6
    assert len(trk.live_tracks()) == 6


def test_many_slots_stay_consistent() -> None:
    trk = QueryTracker(TrackerConfig(output_score=0.0, max_outputs=300), network(256), seed=1)
    rng = np.random.default_rng(0)
    for frame in range(5):
        trk.prepare(frame * SEC // 10, Transform.from_xy_yaw(frame * 1.0, 0.0, 0.05 * frame))
        n = 300 + 256
        scores = rng.uniform(0.0, 0.6, size=(n, NUM_CLASSES)).astype(np.float32)
        boxes = np.tile(np.array(box(), dtype=np.float64), (n, 1))
        boxes[:, :2] = rng.uniform(-40, 40, size=(n, 2))
        refs = normalize_points(boxes[:, :3], PC_RANGE).astype(np.float32)
        emb = rng.normal(size=(n, C)).astype(np.float32)
        out = trk.update(DecoderOutputs(scores, boxes, refs, emb))
        assert len(out) == trk.num_live <= 256
        assert len(set(trk.live_ids)) == trk.num_live
    assert trk.dropped_births > 0


# ------------------------------------------------------------------ duplicate births


def test_two_queries_on_one_object_make_one_track_whatever_their_class() -> None:
    trk = tracker(num_slots=8)
    dets: list[Row] = [(PED, 0.6, box(10.3, 0.4)), (CAR, 0.9, box(10.0)), (CAR, 0.7, box(10.9))]
    (t,) = step(trk, 0.0, dets)
    assert (t.score, t.label) == pytest.approx((0.9, CAR))  # the best one is born
    assert trk.duplicate_births == 2 and trk.dropped_births == 0
    np.testing.assert_array_equal(trk.last_changes.birth_rows, [1])


def test_only_accepted_births_block_later_candidates() -> None:
    # B is 0.8 m from A (a duplicate); C is 0.8 m from B but 1.6 m from A: B took no slot, so C is born.
    trk = tracker(num_slots=8)
    out = step(trk, 0.0, [(CAR, 0.9, box(0.0)), (CAR, 0.8, box(0.8)), (CAR, 0.7, box(1.6))])
    assert [t.box[0] for t in out] == [0.0, 1.6]
    assert trk.duplicate_births == 1


def test_duplicates_of_tracks_are_judged_at_their_current_boxes() -> None:
    trk = tracker(num_slots=8)
    step(trk, 0.0, [(CAR, 0.9, box(0.0)), (CAR, 0.9, box(20.0, vx=2.0))])
    confirmed, coasting = trk.slot_of(1), trk.slot_of(2)
    # Track 1 is confirmed at x=5 this frame; track 2 coasts from x=20 to x=21 (2 m/s over 0.5 s).
    dets: list[Row] = [
        (PED, 0.9, box(5.5)),  # 0.5 m from track 1's new box: a duplicate, though of another class
        (CAR, 0.9, box(0.0)),  # where track 1 was: a new object
        (CAR, 0.9, box(21.4)),  # 0.4 m from track 2's propagated box: a duplicate
        (CAR, 0.9, box(19.8)),  # 1.2 m from it, where it was: a new object
    ]
    out = step(trk, 0.5, dets, slots={confirmed: (CAR, 0.9, box(5.0)), coasting: (CAR, 0.1, box())})
    assert trk.duplicate_births == 2
    np.testing.assert_array_equal(trk.last_changes.birth_rows, [1, 3])
    assert sorted(t.box[0] for t in out if t.track_id > 2) == [0.0, 19.8]


def test_distance_zero_turns_the_duplicate_check_off() -> None:
    out = step(tracker(num_slots=8, duplicate_distance_m=0.0), 0.0, [(CAR, 0.9, box()), (CAR, 0.8, box())])
    assert len(out) == 2


def test_duplicate_candidates_is_best_first_and_strict() -> None:
    centers = np.array([[0.0, 0.0], [0.0, 0.99], [0.0, 1.0], [5.0, 0.0], [5.0, 0.5]])
    tracks = np.array([[5.0, 0.9]])
    np.testing.assert_array_equal(
        duplicate_candidates(centers, tracks, 1.0), [False, True, False, True, True]
    )
    assert not duplicate_candidates(centers, np.zeros((0, 2)), 0.0).any()
    assert duplicate_candidates(np.zeros((0, 2)), tracks, 1.0).shape == (0,)


# ------------------------------------------------------------------ reattachment


def _young_track_missed(reattach: float, dets: Sequence[Row], **overrides: object) -> QueryTracker:
    """Track 1 born at x=0 standing still; next frame its query misses (0.1) while ``dets`` come."""
    trk = tracker(num_slots=8, reattach_distance_m=reattach, **overrides)
    step(trk, 0.0, [(CAR, 0.9, box(0.0))])
    step(trk, 0.5, dets, slots={trk.slot_of(1): (CAR, 0.1, box(-5.0))})
    return trk


def test_a_missing_track_takes_the_nearest_detection_of_its_class() -> None:
    dets: list[Row] = [
        (PED, 0.9, box(1.0)),  # nearer, but another class: a new track
        (CAR, 0.8, box(3.0)),  # 3 m ahead of where the track stood: taken
        (CAR, 0.9, box(3.5)),  # farther (though better): 0.5 m from the track's new box, a duplicate
        (CAR, 0.9, box(9.0)),  # beyond 4 m: a new track
    ]
    trk = _young_track_missed(4.0, dets)
    slot, c = trk.slot_of(1), trk.last_changes
    (t1,) = [t for t in trk.live_tracks() if t.track_id == 1]
    assert (t1.box[0], t1.hits, t1.frames_since_update) == (3.0, 2, 0)
    assert t1.score == pytest.approx(0.8)  # the detection's
    np.testing.assert_array_equal(c.reattached_rows, [1])
    np.testing.assert_array_equal(c.reattached_slots, [slot])
    assert slot not in c.refreshed and trk.reattached == 1 and trk.duplicate_births == 1
    np.testing.assert_array_equal(c.birth_rows, [0, 3])  # equal scores: query order
    np.testing.assert_array_equal(trk.prepare(SEC, IDENTITY).embeddings[slot], 2.0)  # row 1's features


def test_without_reattachment_the_track_coasts_and_the_object_is_born_again() -> None:
    trk = _young_track_missed(0.0, [(CAR, 0.8, box(3.0))])
    (t1,) = [t for t in trk.live_tracks() if t.track_id == 1]
    assert (t1.box[0], t1.frames_since_update, trk.reattached) == (0.0, 1, 0)
    assert trk.live_ids == (1, 2) and len(trk.last_changes.reattached_rows) == 0


def test_only_a_detection_confident_enough_to_confirm_is_taken() -> None:
    # Born at >= 0.3, confirmed at >= 0.5: a 0.4 detection starts its own track instead.
    trk = _young_track_missed(4.0, [(CAR, 0.4, box(3.0))], birth_score=0.3, update_score=0.5)
    assert trk.reattached == 0 and trk.live_ids == (1, 2)
    trk = _young_track_missed(4.0, [(CAR, 0.5, box(3.0))], birth_score=0.3, update_score=0.5)
    assert trk.reattached == 1 and trk.live_ids == (1,)


def test_confirmed_tracks_are_not_reattached_and_pairs_are_one_to_one() -> None:
    trk = tracker(num_slots=8, reattach_distance_m=4.0)
    step(trk, 0.0, [(CAR, 0.9, box(0.0)), (CAR, 0.9, box(6.0)), (CAR, 0.9, box(20.0))])
    a, b, c = (trk.slot_of(i) for i in (1, 2, 3))
    # a and b miss, c is confirmed; the detection at 3.5 is nearer b (2.5 m) than a (3.5 m).
    dets: list[Row] = [(CAR, 0.9, box(3.5)), (CAR, 0.9, box(9.0)), (CAR, 0.9, box(20.5))]
    step(trk, 0.5, dets, slots={a: (CAR, 0.1, box()), b: (CAR, 0.1, box()), c: (CAR, 0.9, box(20.0))})
    moved = {t.track_id: t.box[0] for t in trk.live_tracks()}
    assert (moved[1], moved[2], moved[3]) == (0.0, 3.5, 20.0)  # a coasts: its only candidate is taken
    np.testing.assert_array_equal(trk.last_changes.reattached_rows, [0])
    np.testing.assert_array_equal(trk.last_changes.birth_rows, [1])  # 9.0 is b's no more: a new track


def test_a_confirmed_tracks_second_query_is_not_taken() -> None:
    trk = tracker(num_slots=8, reattach_distance_m=4.0)
    step(trk, 0.0, [(CAR, 0.9, box(0.0)), (CAR, 0.9, box(3.0))])
    a, c = trk.slot_of(1), trk.slot_of(2)
    # c is confirmed at 3.0; the detection 0.3 m from it is c's object seen twice, not a's.
    step(trk, 0.5, [(CAR, 0.9, box(3.3))], slots={a: (CAR, 0.1, box()), c: (CAR, 0.9, box(3.0))})
    assert trk.reattached == 0 and trk.duplicate_births == 1 and trk.live_ids == (1, 2)


def test_nearest_pairs_is_one_to_one_nearest_first() -> None:
    inf = np.inf
    rows, cols = nearest_pairs(np.array([[3.5, 9.0, inf], [2.5, 3.0, inf], [inf, inf, inf]]))
    np.testing.assert_array_equal(rows, [1, 0])
    np.testing.assert_array_equal(cols, [0, 1])
    assert all(len(x) == 0 for x in nearest_pairs(np.full((2, 0), inf)))


# ------------------------------------------------------------------ memory and changes


def test_memory_is_refreshed_only_by_confident_outputs() -> None:
    trk = tracker(update_score=0.5)
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    slot = trk.slot_of(1)
    # Finite but unconfident (just under update_score): the birth row 0's features stay.
    step(trk, 0.1, slots={slot: (CAR, 0.49, box(1.0))})
    np.testing.assert_array_equal(trk.prepare(round(0.2 * SEC), IDENTITY).embeddings[slot], 1.0)
    trk.update(make_outputs(4, slots={slot: (CAR, 0.5, box(1.0))}))  # at the threshold: refreshed
    np.testing.assert_array_equal(trk.prepare(round(0.3 * SEC), IDENTITY).embeddings[slot], Q + slot + 1)


def test_last_changes_name_births_refreshed_and_ended_slots() -> None:
    trk = tracker(max_missed=0)
    assert len(trk.last_changes.birth_rows) == 0
    step(trk, 0.0, [(CAR, 0.5, box(0.0)), (CAR, 0.9, box(10.0)), (CAR, 0.3, box(20.0))])
    c = trk.last_changes
    np.testing.assert_array_equal(c.birth_rows, [1, 0])  # best first
    np.testing.assert_array_equal(c.birth_slots, [0, 1])
    assert (len(c.refreshed), len(c.ended)) == (0, 0)
    # Slot 0 is confirmed, slot 1 misses and ends, and a new object takes slot 1 at once.
    step(trk, 0.1, [(CAR, 0.8, box(30.0))], slots={0: (CAR, 0.9, box(10.0))})
    c = trk.last_changes
    np.testing.assert_array_equal(c.refreshed, [0])
    np.testing.assert_array_equal(c.ended, [1])
    np.testing.assert_array_equal(c.birth_rows, [0])
    np.testing.assert_array_equal(c.birth_slots, [1])
    assert c.refreshed.dtype == np.int64
    with pytest.raises(ValueError):
        c.ended[0] = 3  # a record, not a view of the tracker's state
    trk.reset()
    assert len(trk.last_changes.refreshed) == 0


def mirror(emb: NDArray[np.float32], out: DecoderOutputs, changes: FrameChanges) -> NDArray[np.float32]:
    """FrameChanges' documented recipe, applied to a copy of the slot embeddings."""
    q = out.num_detections(len(emb))
    emb = emb.copy()
    emb[changes.ended] = 0.0
    emb[changes.refreshed] = out.embeddings[q + changes.refreshed]
    emb[changes.reattached_slots] = out.embeddings[changes.reattached_rows]
    emb[changes.birth_slots] = out.embeddings[changes.birth_rows]
    return emb


@pytest.mark.parametrize("reattach", [0.0, 8.0])
def test_mirroring_last_changes_reproduces_the_stored_embeddings(reattach: float) -> None:
    trk = QueryTracker(TrackerConfig(max_missed=1, reattach_distance_m=reattach), network(16), seed=3)
    rng = np.random.default_rng(5)
    mirrored = np.zeros((16, C), dtype=np.float32)
    for frame in range(8):
        slots = trk.prepare(frame * SEC // 10, IDENTITY)
        np.testing.assert_array_equal(slots.embeddings, mirrored)
        n = 12 + 16
        boxes = np.tile(np.array(box(), dtype=np.float64), (n, 1))
        boxes[:, :2] = rng.uniform(-8.0, 8.0, size=(n, 2))  # crowded: duplicates and a full table
        scores = rng.uniform(0.0, 0.7, size=(n, NUM_CLASSES)).astype(np.float32)
        emb = rng.normal(size=(n, C)).astype(np.float32)
        out = DecoderOutputs(scores, boxes, normalize_points(boxes[:, :3], PC_RANGE).astype(np.float32), emb)
        trk.update(out)
        mirrored = mirror(mirrored, out, trk.last_changes)
    assert trk.duplicate_births > 0 and trk.full_table_frames > 0 and trk.resets == 0
    assert (trk.reattached > 0) == (reattach > 0)


# ------------------------------------------------------------------ ego motion


def test_ego_drives_forward_and_turns_static_object() -> None:
    # Ego at the origin facing +x, then 5 m forward and turned 90° left.
    # A static object at (10, 2) heading +x: in the new frame it is at (2, -5), heading -90°.
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(10.0, 2.0))])
    slot = trk.slot_of(1)
    slots = trk.prepare(round(0.5 * SEC), Transform.from_xy_yaw(5.0, 0.0, math.pi / 2))
    (t,) = trk.update(make_outputs(4))
    np.testing.assert_allclose(t.box[:3], [2.0, -5.0, 0.5], atol=1e-9)
    assert t.box[6] == pytest.approx(-math.pi / 2)
    np.testing.assert_allclose(t.box[7:], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(t.box[3:6], [4.0, 2.0, 1.5])
    # Reference point = the propagated center, normalized over the range.
    expected_ref = [(2.0 + 51.2) / 102.4, (-5.0 + 51.2) / 102.4, (0.5 + 5.0) / 8.0]
    np.testing.assert_allclose(slots.refs[slot], expected_ref, atol=1e-6)


def test_ego_motion_rotates_velocity_of_moving_object() -> None:
    # Same ego motion over 0.5 s; the object drives at 4 m/s along the old +x axis.
    # Old frame: (10, 2) + 0.5 * (4, 0) = (12, 2); relative to the new ego (7, 2) -> rotated by -90°: (2, -7).
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(10.0, 2.0, vx=4.0, yaw=0.3))])
    trk.prepare(round(0.5 * SEC), Transform.from_xy_yaw(5.0, 0.0, math.pi / 2))
    (t,) = trk.update(make_outputs(4))
    np.testing.assert_allclose(t.box[:2], [2.0, -7.0], atol=1e-9)
    np.testing.assert_allclose(t.box[7:], [0.0, -4.0], atol=1e-9)
    assert t.box[6] == pytest.approx(0.3 - math.pi / 2)


def test_poses_relative_to_any_world_origin_give_the_same_result() -> None:
    # Only the relative motion matters, so shifting and rotating the world changes nothing.
    world = Transform.from_xy_yaw(100.0, -30.0, 1.1)
    results = []
    for origin in (IDENTITY, world):
        trk = tracker()
        step(trk, 0.0, [(CAR, 0.9, box(10.0, 2.0, vx=4.0))], pose=origin)
        trk.prepare(round(0.5 * SEC), origin @ Transform.from_xy_yaw(5.0, 0.0, math.pi / 2))
        results.append(trk.update(make_outputs(4))[0].box)
    np.testing.assert_allclose(results[0], results[1], atol=1e-9)


def test_refs_are_clipped_to_the_unit_cube() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(50.0, -50.0, vx=20.0, vy=-20.0))])
    slot = trk.slot_of(1)
    slots = trk.prepare(SEC, IDENTITY)
    np.testing.assert_allclose(slots.refs[slot][:2], [1.0, 0.0])
    assert slots.refs.dtype == np.float32


# ------------------------------------------------------------------ robustness


def test_nonfinite_rows_neither_give_birth_nor_corrupt_tracks() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(1.0, vx=1.0))])
    slot = trk.slot_of(1)
    before = trk.prepare(SEC, IDENTITY)
    out = make_outputs(4, [(CAR, 0.95, box(3.0))], slots={slot: (CAR, 0.9, box(7.0))})
    out.boxes[0, 4] = np.nan  # detection row: would be born otherwise
    out.embeddings[Q + slot, 2] = np.inf  # slot row: would confirm otherwise
    out.scores[Q + (slot + 1) % 4, :] = np.nan  # a free slot: not consulted, not counted
    (t,) = trk.update(out)
    assert trk.nonfinite_rows == 2
    assert (t.track_id, t.frames_since_update, t.score) == (1, 1, 0.0)
    np.testing.assert_allclose(t.box, box(2.0, vx=1.0))
    after = trk.prepare(2 * SEC, IDENTITY)
    np.testing.assert_array_equal(after.embeddings[slot], before.embeddings[slot])
    assert np.isfinite(after.embeddings).all() and np.isfinite(after.refs).all()


def test_nan_score_column_does_not_win() -> None:
    out = make_outputs(4, [(CAR, 0.9, box(1.0))])
    out.scores[0, PED] = np.nan
    trk = tracker()
    trk.prepare(0, IDENTITY)
    assert trk.update(out) == []
    assert trk.nonfinite_rows == 1


def test_protocol_errors() -> None:
    trk = tracker()
    with pytest.raises(RuntimeError, match="prepare"):
        trk.update(make_outputs(4))
    trk.prepare(0, IDENTITY)
    few = make_outputs(4, q=0)
    with pytest.raises(ValueError, match="3 rows cannot hold the 4 slot rows"):
        trk.update(DecoderOutputs(few.scores[:3], few.boxes[:3], few.refs[:3], few.embeddings[:3]))
    with pytest.raises(ValueError, match="embeddings: expected width"):
        out = make_outputs(4)
        trk.update(DecoderOutputs(out.scores, out.boxes, out.refs, out.embeddings[:, :3]))
    with pytest.raises(ValueError, match=r"DecoderOutputs\.boxes"):
        DecoderOutputs(out.scores, out.boxes[:, :7], out.refs, out.embeddings)
    with pytest.raises(ValueError, match="same number of rows"):
        DecoderOutputs(out.scores, out.boxes[:-1], out.refs, out.embeddings)
    with pytest.raises(TypeError, match="timestamp_ns"):
        trk.prepare(1.5, IDENTITY)  # type: ignore[arg-type]
    trk.update(make_outputs(4))
    with pytest.raises(RuntimeError):
        trk.update(make_outputs(4))


def test_slots_handed_out_are_copies() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(1.0))])
    slots = trk.prepare(SEC, IDENTITY)
    slots.embeddings[:] = 99.0
    slots.mask[:] = False
    (t,) = trk.update(make_outputs(4))
    assert t.track_id == 1
    with pytest.raises(ValueError):
        t.box[0] = 5.0  # reported boxes are read-only snapshots


def test_uuids_reproducible_for_a_seed() -> None:
    def uuids(seed: int) -> list[bytes]:
        trk = QueryTracker(TrackerConfig(), network(4), seed=seed)
        return [t.uuid for t in step(trk, 0.0, [(CAR, 0.9, box(1.0)), (CAR, 0.8, box(2.0))])]

    assert uuids(3) == uuids(3)
    assert uuids(3) != uuids(4)


def test_nonfinite_rows_rejected_even_with_zero_thresholds() -> None:
    # Every row sits at the origin: with the duplicate check on, one track would stand for them all.
    trk = tracker(num_slots=8, birth_score=0.0, update_score=0.0, duplicate_distance_m=0.0)
    trk.prepare(0, IDENTITY)
    out = make_outputs(8)
    out.refs[2, 0] = np.nan
    born = trk.update(out)
    assert len(born) == Q - 1  # every finite detection row qualifies at threshold 0
    slot = trk.slot_of(1)
    trk.prepare(SEC // 10, IDENTITY)
    out = make_outputs(8)
    out.boxes[Q + slot, 0] = np.nan
    tracks = {t.track_id: t for t in trk.update(out)}
    assert tracks[1].frames_since_update == 1
    assert all(t.frames_since_update == 0 for i, t in tracks.items() if i != 1)
    assert all(np.isfinite(t.box).all() for t in tracks.values())


def test_coasting_score_decays_per_frame_missed_and_recovers_on_a_hit() -> None:
    trk = tracker(coast_score_decay=0.5, update_score=0.4, max_missed=3)
    step(trk, 0.0, [(CAR, 0.9, box(10.0))])
    slot = trk.slot_of(1)
    (t,) = step(trk, 0.5, slots={slot: (CAR, 0.3, box(10.0))})
    assert t.score == pytest.approx(0.15) and t.frames_since_update == 1
    (t,) = step(trk, 1.0, slots={slot: (CAR, 0.3, box(10.0))})
    assert t.score == pytest.approx(0.075)
    (t,) = step(trk, 1.5, slots={slot: (CAR, 0.8, box(10.0))})  # confirmed: its decoded score
    assert t.score == pytest.approx(0.8)
    # The decayed score decides what is reported: 0.3 * 0.5 falls below an output threshold of 0.2.
    trk = tracker(coast_score_decay=0.5, output_score=0.2)
    step(trk, 0.0, [(CAR, 0.9, box(10.0))])
    assert step(trk, 0.5, slots={trk.slot_of(1): (CAR, 0.3, box(10.0))}) == []
    assert trk.num_live == 1  # still coasting, only not reported


def test_coasting_score_decay_one_reports_the_decoded_score() -> None:
    trk = tracker()
    step(trk, 0.0, [(CAR, 0.9, box(10.0))])
    (t,) = step(trk, 0.5, slots={trk.slot_of(1): (CAR, 0.3, box(10.0))})
    assert t.score == pytest.approx(0.3)


# ------------------------------------------------------------------ coasting tracks not decoded


def _coasting_car(**overrides: object) -> QueryTracker:
    """A car born at x=0 whose own query then misses once (it coasts)."""
    trk = tracker(num_slots=4, coast_score_decay=0.5, **overrides)
    step(trk, 0.0, [(CAR, 0.8, box(0.0))])
    step(trk, 0.5, slots={0: (CAR, 0.3, box(0.0))})
    return trk


def test_a_coasting_track_is_decoded_by_default() -> None:
    trk = _coasting_car()
    assert trk.prepare(round(1.0 * SEC), IDENTITY).mask[0]


def test_a_withheld_coasting_track_ignores_its_row_and_decays() -> None:
    trk = _coasting_car(decode_coasting=False)
    slots = trk.prepare(round(1.0 * SEC), IDENTITY)
    assert not slots.mask.any()  # the coasting track claims no seed
    assert trk.withheld.tolist() == [True, False, False, False]
    # Its slot row is not read even if it holds a confident car at the track's place.
    (t,) = trk.update(make_outputs(4, slots={0: (CAR, 0.9, box(0.0))}))
    assert t.frames_since_update == 2 and t.score == pytest.approx(0.3 * 0.5**1 * 0.5)
    assert trk.last_changes.refreshed.size == 0
    # A confirmed track stays decoded.
    seen = tracker(num_slots=4, decode_coasting=False)
    step(seen, 0.0, [(CAR, 0.8, box(0.0))])
    assert seen.prepare(round(0.5 * SEC), IDENTITY).mask[0]


def test_a_withheld_coasting_track_comes_back_by_reattachment() -> None:
    trk = _coasting_car(decode_coasting=False, reattach_distance_m=8.0)
    trk.prepare(round(1.0 * SEC), IDENTITY)
    (t,) = trk.update(make_outputs(4, dets=[(CAR, 0.7, box(3.0))]))
    assert (t.track_id, t.frames_since_update, t.box[0]) == (1, 0, 3.0)
    assert t.score == pytest.approx(0.7)
    np.testing.assert_array_equal(trk.last_changes.reattached_slots, [0])


def test_decode_coasting_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="decode_coasting"):
        TrackerConfig(decode_coasting="no")  # type: ignore[arg-type]
