"""Range and lateral errors by range bin (syncl_ros/eval/range_errors.py) on a synthetic val split."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from syncl_ros.eval import range_errors


def _moved(val_nusc: Any, val_truth: dict[str, Any], along: float, across: float) -> dict[str, Any]:
    """The ground truth with each box moved `along` its line of sight from the ego and `across` it."""
    moved = copy.deepcopy(val_truth)
    for token, boxes in moved.items():
        ego = range_errors.scored_objects(val_nusc, token).ego_xy
        for box in boxes:
            xy = np.asarray(box["translation"][:2]) - ego
            u = xy / np.linalg.norm(xy)
            box["translation"][:2] = list(ego + xy + along * u + across * np.array([-u[1], u[0]]))
    return moved


def _objects_in_bins(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    with_objects = [r for r in rows if r["objects"] > 0]
    assert len(with_objects) >= 2, "the split must hold objects in more than one range bin"
    return with_objects


def test_ground_truth_has_no_error(val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any]) -> None:
    rows = range_errors.range_table(val_nusc, val_samples, val_truth)
    for row in _objects_in_bins(rows):
        assert row["matched"] == pytest.approx(1.0)
        assert row["range_abs_m"] == pytest.approx(0.0, abs=1e-6)
        assert row["lateral_m"] == pytest.approx(0.0, abs=1e-6)
    total = sum(r["objects"] for r in rows)
    scored = sum(len(range_errors.scored_objects(val_nusc, t).names) for t in val_samples)
    assert total == scored > 0


@pytest.mark.parametrize(("along", "across"), [(1.5, 0.0), (-2.5, 0.0), (0.0, 1.0), (1.0, -2.0)])
def test_moved_boxes_split_into_range_and_lateral_error(
    val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any], along: float, across: float
) -> None:
    rows = range_errors.range_table(val_nusc, val_samples, _moved(val_nusc, val_truth, along, across))
    for row in _objects_in_bins(rows):
        # Greedy matching may hand a moved box to a neighbour of the same class (a group of
        # pedestrians); the medians stay those of the move.
        assert row["matched"] >= 0.9
        assert row["range_signed_m"] == pytest.approx(along, abs=1e-6)
        assert row["range_abs_m"] == pytest.approx(abs(along), abs=1e-6)
        assert row["lateral_m"] == pytest.approx(abs(across), abs=1e-6)


def test_boxes_beyond_the_match_distance_are_not_matched() -> None:
    objects = range_errors.Objects(["car", "car"], np.array([[20.0, 0.0], [0.0, 40.0]]), np.zeros(2))
    boxes = [
        {"translation": [20.0, 4.5, 0.0], "tracking_name": "car", "tracking_score": 0.9},
        {"translation": [3.9, 40.0, 0.0], "tracking_name": "car", "tracking_score": 0.9},
    ]
    errors = range_errors.match(objects, boxes, min_score=0.4, match_m=4.0)
    assert np.isnan(errors.range_err[0]) and np.isnan(errors.lateral_err[0])
    assert (errors.range_err[1], errors.lateral_err[1]) == pytest.approx((0.0, 3.9))
    rows = range_errors.errors_by_range([errors])
    assert [r["objects"] for r in rows] == [0.0, 0.0, 1.0, 1.0]  # ranges 20 m and 40 m
    assert np.isnan(rows[0]["matched"]) and rows[2]["matched"] == 0.0 and rows[3]["matched"] == 1.0
    assert np.isnan(rows[2]["range_abs_m"]) and rows[3]["lateral_m"] == pytest.approx(3.9)


def test_unconfident_and_wrong_class_boxes_are_left_out(
    val_nusc: Any, val_samples: list[str], val_truth: dict[str, Any]
) -> None:
    low, renamed = copy.deepcopy(val_truth), copy.deepcopy(val_truth)
    for boxes in low.values():
        for box in boxes:
            box["tracking_score"] = 0.39
    for boxes in renamed.values():
        for box in boxes:
            box["tracking_name"] = "motorcycle_sidecar"  # a class no object has
    for results in (low, renamed):
        rows = range_errors.range_table(val_nusc, val_samples, results)
        assert all(r["matched"] == 0.0 for r in _objects_in_bins(rows))
    rows = range_errors.range_table(val_nusc, val_samples, low, min_score=0.3)
    assert all(r["matched"] == pytest.approx(1.0) for r in _objects_in_bins(rows))


def test_the_best_scored_box_takes_the_object() -> None:
    objects = range_errors.Objects(["car"], np.array([[20.0, 0.0]]), np.zeros(2))
    near = {"translation": [20.5, 0.0, 0.0], "tracking_name": "car", "tracking_score": 0.5}
    far = {"translation": [23.0, 0.0, 0.0], "tracking_name": "car", "tracking_score": 0.9}
    errors = range_errors.match(objects, [near, far], min_score=0.4, match_m=4.0)
    assert errors.range_err[0] == pytest.approx(3.0)
    detection = {"translation": [19.0, 1.0, 0.0], "detection_name": "car", "detection_score": 0.8}
    errors = range_errors.match(objects, [detection], min_score=0.4, match_m=4.0)
    assert (errors.range_err[0], errors.lateral_err[0]) == pytest.approx((-1.0, 1.0))


def test_cli_prints_a_table_per_results_file(
    synth_val_root: Path, val_truth: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from syncl_ros.eval.tracking import results_meta

    path = tmp_path / "val_truth.json"
    path.write_text(json.dumps({"meta": results_meta(), "results": val_truth}))
    argv = [str(path), "--dataroot", str(synth_val_root), "--split", "val"]
    assert range_errors.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("val_truth:\n| range | objects | matched |")
    assert "| 0–10 m |" in out and "| ≥ 35 m |" in out
    twin = tmp_path / "other" / "val_truth.json"
    twin.parent.mkdir()
    twin.write_text(path.read_text())
    assert range_errors.main([str(path), str(twin), *argv[1:]]) == 0
    out = capsys.readouterr().out
    assert f"{path}:\n" in out and f"{twin}:\n" in out, "files of the same name keep a table each"
    assert range_errors.main([str(tmp_path / "missing.json"), "--dataroot", str(synth_val_root)]) == 2
    assert "results file not found" in capsys.readouterr().err
