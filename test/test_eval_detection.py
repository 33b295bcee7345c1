"""Detection mAP of tracking results (devkit DetectionEval) on the shared synthetic val split."""

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from syncl_ros.classes import TRACKING_CLASSES
from syncl_ros.eval.detection import as_detections, evaluate_detection, is_detection_results
from syncl_ros.eval.tracking import EvalError, ground_truth_results

VERSION, SPLIT = "v1.0-trainval", "val"


@pytest.fixture(scope="module")
def gt_results(synth_val_root: Path) -> dict[str, Any]:
    from nuscenes import NuScenes

    return ground_truth_results(NuScenes(VERSION, str(synth_val_root), verbose=False), SPLIT)


def _score(results: dict[str, Any], root: Path, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return evaluate_detection(path, root, VERSION, SPLIT)


def test_ground_truth_has_full_map(gt_results: dict[str, Any], synth_val_root: Path, tmp_path: Path) -> None:
    metrics = _score(gt_results, synth_val_root, tmp_path)
    assert metrics["map"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["mate"] == pytest.approx(0.0, abs=1e-6)
    assert set(metrics["per_class_ap"]) == set(TRACKING_CLASSES)
    scored = [c for c, ap in metrics["per_class_ap"].items() if ap is not None]
    assert scored and all(metrics["per_class_ap"][c] == pytest.approx(1.0) for c in scored)


def test_offsets_beyond_the_tight_thresholds_halve_map(
    gt_results: dict[str, Any], synth_val_root: Path, tmp_path: Path
) -> None:
    shifted = copy.deepcopy(gt_results)
    rng = np.random.default_rng(0)
    for boxes in shifted["results"].values():
        for box in boxes:
            # 1.5 m: beyond the 0.5 and 1 m thresholds, within 2 and 4 m -> about half of full AP
            angle = rng.uniform(0, 2 * np.pi)
            box["translation"][0] += 1.5 * np.cos(angle)
            box["translation"][1] += 1.5 * np.sin(angle)
    metrics = _score(shifted, synth_val_root, tmp_path)
    assert 0.4 < metrics["map"] < 0.6
    assert metrics["mate"] == pytest.approx(1.5, abs=0.05)  # matched within the 2 m TP threshold


def test_tracking_boxes_become_detections(gt_results: dict[str, Any]) -> None:
    converted = as_detections(gt_results)
    token, boxes = next((t, b) for t, b in gt_results["results"].items() if b)
    first = converted["results"][token][0]
    assert first["detection_name"] == boxes[0]["tracking_name"]
    assert first["detection_score"] == boxes[0]["tracking_score"] and first["attribute_name"] == ""
    assert "tracking_id" not in first


def test_an_empty_submission_is_a_clear_error(
    gt_results: dict[str, Any], synth_val_root: Path, tmp_path: Path
) -> None:
    empty = {"meta": gt_results["meta"], "results": {t: [] for t in gt_results["results"]}}
    with pytest.raises(EvalError, match="no box"):
        _score(empty, synth_val_root, tmp_path)


def test_detection_results_are_scored_as_they_are(
    gt_results: dict[str, Any], synth_val_root: Path, tmp_path: Path
) -> None:
    detections = as_detections(gt_results)
    assert is_detection_results(detections) and not is_detection_results(gt_results)
    metrics = _score(detections, synth_val_root, tmp_path)
    assert metrics["map"] == pytest.approx(1.0, abs=1e-6)
    # Perfect boxes and velocities; no attribute is predicted, so its error is 1 and NDS 0.9.
    assert metrics["mave"] == pytest.approx(0.0, abs=1e-6) and metrics["maae"] == 1
    assert metrics["nds"] == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("false_score", [0.9, 0.1])
def test_the_detection_score_ranks_the_boxes(
    false_score: float, gt_results: dict[str, Any], synth_val_root: Path, tmp_path: Path
) -> None:
    detections = as_detections(gt_results)
    for boxes in detections["results"].values():
        false = copy.deepcopy(boxes)
        for box in false:
            box["translation"][0] += 10.0  # beyond every match threshold
            box["detection_score"] = false_score
        for box in boxes:
            box["detection_score"] = 0.5
        boxes.extend(false)
    metrics = _score(detections, synth_val_root, tmp_path)
    if false_score < 0.5:  # every true box ranks first: full precision up to full recall
        assert metrics["map"] == pytest.approx(1.0, abs=0.01)
    else:
        # Every false box first: at recall r the precision is r / (1 + r); the devkit averages it
        # (less its 0.1 floor) over recall 0.1 to 1 without an envelope: about 0.27 per class.
        assert 0.2 < metrics["map"] < 0.4
