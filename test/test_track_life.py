"""False positives along tracks and score ranking (syncl_ros/eval/track_life.py)."""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from syncl_ros.eval import track_life
from syncl_ros.eval.range_errors import scored_objects


def test_roc_auc_known_values() -> None:
    assert track_life.roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert track_life.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert track_life.roc_auc([1, 0], [0.5, 0.5]) == 0.5
    # pairs (pos, neg): (0.9 > 0.5), (0.9 > 0.1), (0.3 < 0.5), (0.3 > 0.1) -> 3 of 4
    assert track_life.roc_auc([1, 0, 1, 0], [0.9, 0.5, 0.3, 0.1]) == pytest.approx(0.75)
    assert np.isnan(track_life.roc_auc([1, 1], [0.2, 0.3]))


def test_summarize_counts_each_false_positive_by_its_place_in_the_track() -> None:
    lives = {
        ("s", "1"): [(False, 0.3), (True, 0.9), (False, 0.4), (True, 0.8), (False, 0.2), (False, 0.2)],
        ("s", "2"): [(False, 0.5), (False, 0.1)],
        ("s", "3"): [(True, 0.7)],
    }
    row = track_life.summarize(lives)
    assert row["boxes"] == 9 and row["matched"] == pytest.approx(3 / 9)
    assert row["tracks"] == 3 and row["never_matched_tracks"] == 1
    assert row["fp_never_matched"] == 2
    assert row["fp_before_first"] == 1 and row["fp_gaps"] == 1 and row["fp_after_last"] == 2
    # track means: 1 -> 0.4667, 2 -> 0.3, 3 -> 0.7
    assert row["auc_track_mean"] == pytest.approx(
        track_life.roc_auc([0, 1, 0, 1, 0, 0, 0, 0, 1], [0.4667] * 6 + [0.3, 0.3, 0.7])
    )


def _matches(nusc: Any, samples: list[str], results: dict[str, Any]) -> list[track_life.SampleMatch]:
    return track_life.match_samples(nusc, samples, results, track_life.MATCH_M)


def _summary(nusc: Any, samples: list[str], results: dict[str, Any]) -> dict[str, float]:
    return track_life.summarize(track_life.track_lives(_matches(nusc, samples, results)))


def _duplicates(nusc: Any, samples: list[str], results: dict[str, Any]) -> int:
    return track_life.duplicates(_matches(nusc, samples, results), track_life.MATCH_M)


def test_ground_truth_has_no_false_positive(
    val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any]
) -> None:
    row = _summary(val_nusc, val_samples, val_truth)
    assert row["boxes"] > 100 and row["matched"] == 1.0
    assert row["never_matched_tracks"] == 0
    assert row["fp_before_first"] == row["fp_gaps"] == row["fp_after_last"] == 0


def _drifted(val_nusc: Any, val_truth: dict[str, Any], val_samples: list[str]) -> tuple[dict[str, Any], int]:
    """The ground truth with the second half of its longest track moved 6 m, the moved boxes' count."""
    order = track_life.time_order(val_nusc, val_samples)
    boxes_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    moved = copy.deepcopy(val_truth)
    for token in order:
        for box in moved.get(token, []):
            boxes_of[box["tracking_id"]].append(box)
    longest = max(boxes_of.values(), key=len)
    tail = longest[len(longest) // 2 :]
    for box in tail:
        box["translation"][0] += 6.0
    return moved, len(tail)


def test_a_track_that_drifts_off_its_object_counts_after_its_last_match(
    val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any]
) -> None:
    moved, n = _drifted(val_nusc, val_truth, val_samples)
    assert n >= 3
    row = _summary(val_nusc, val_samples, moved)
    base = _summary(val_nusc, val_samples, val_truth)
    # A moved box out of its class range is dropped, as the metrics drop it, so at most n count.
    assert 0 < row["fp_after_last"] <= n
    assert row["fp_before_first"] == row["fp_gaps"] == row["never_matched_tracks"] == 0
    assert row["boxes"] * row["matched"] == pytest.approx(base["boxes"] - n)


def test_cli_prints_a_row_per_file_and_refuses_detection_results(
    synth_val_root: Path, val_truth: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "val_truth.json"
    good.write_text(json.dumps({"meta": {}, "results": val_truth}))
    assert track_life.main([str(good), "--dataroot", str(synth_val_root)]) == 0
    out = capsys.readouterr().out
    assert "| val_truth | " in out and "| 1.000 |" in out
    assert "| val_truth | 9+ |" in out  # the table by place along the track follows
    untracked = [{k: v for k, v in b.items() if k != "tracking_id"} for bs in val_truth.values() for b in bs]
    detection = {untracked[0]["sample_token"]: untracked[:1]}
    bad = tmp_path / "det.json"
    bad.write_text(json.dumps({"meta": {}, "results": detection}))
    assert track_life.main([str(bad), "--dataroot", str(synth_val_root)]) == 2
    assert "not tracking results" in capsys.readouterr().err


def test_by_age_bins_boxes_by_their_place_along_the_track() -> None:
    lives = {
        ("s", "1"): [(True, 0.9), (True, 0.7), (False, 0.3)] + [(True, 0.6)] * 7,  # 10 boxes
        ("s", "2"): [(False, 0.5), (False, 0.1)],
    }
    rows = {(r["low"], r["high"]): r for r in track_life.by_age(lives)}
    first = rows[(0.0, 0.0)]
    assert first["boxes"] == 2 and first["matched"] == 0.5
    assert first["score_matched"] == pytest.approx(0.9) and first["score_unmatched"] == pytest.approx(0.5)
    third = rows[(2.0, 2.0)]
    assert third["boxes"] == 1 and third["matched"] == 0.0 and np.isnan(third["score_matched"])
    assert rows[(4.0, 7.0)]["boxes"] == 4 and rows[(8.0, float("inf"))]["boxes"] == 2
    assert sum(r["boxes"] for r in rows.values()) == 12
    table = track_life.format_age_table({"run": track_life.by_age(lives)})
    assert "| run | 1 | 2 | 0.500 | 0.900 | 0.500 |" in table and "| run | 9+ | 2 |" in table


def test_duplicates_counts_a_second_track_on_one_object(
    val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any]
) -> None:
    assert _duplicates(val_nusc, val_samples, val_truth) == 0
    token = next(t for t in val_samples if len(val_truth.get(t, [])) >= 2)
    doubled = copy.deepcopy(val_truth)
    objects = scored_objects(val_nusc, token)
    kept = [dict(b) for b in track_life.scored_boxes(objects, val_truth, token)]
    twins = []
    for box in kept:
        twin = copy.deepcopy(box)
        twin["tracking_id"] = f"twin-{box['tracking_id']}"
        twin["tracking_score"] = 0.5 * float(box["tracking_score"])
        twin["translation"][0] += 1.0  # still within the 2 m match distance
        twins.append(twin)
    far = copy.deepcopy(kept[0])
    far["tracking_id"] = "far"
    same = objects.centers[np.asarray(objects.names) == far["tracking_name"]]
    # a place 4-30 m from the box, farther than 2 m from every object of its class
    for dx in np.arange(4.0, 30.0, 0.5):
        spot = np.asarray(far["translation"][:2], float) + np.array([dx, 0.0])
        if np.hypot(*(same - spot).T).min() > 2.5:
            break
    far["translation"][0] = float(spot[0])
    doubled[token] = [*doubled[token], *twins, far]
    # each twin sits on an object its original matched; the far box is near no object
    assert _duplicates(val_nusc, val_samples, doubled) == len(twins)
