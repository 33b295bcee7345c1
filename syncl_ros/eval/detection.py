"""Detection metrics of tracking or detection results with the official devkit (DetectionEval).

Early in training a tracker localizes objects to a few metres: AMOTA, which
matches within 2 m, stays at 0 while detection mAP, averaged over the 0.5, 1, 2
and 4 m thresholds, already moves. Learning curves therefore report both.

Tracking boxes are scored as detections (tracking score as detection score)
with the devkit's official detection config: the mAP of what a tracker reports,
one class per box and only above its thresholds. Detection results (`syncl
track --detections`: each frame's top 300 query-class pairs, whatever their
score) are scored as they are: the detector's own mAP under the benchmark's
protocol. The config insists on all ten detection classes, so the devkit also
reports the three classes a tracker never outputs (barrier, traffic cone,
construction vehicle); mAP and the error means here are the means of the
devkit's per-class values over the tracking classes that have ground truth in
the split. Every per-class number comes from `nuscenes.eval.detection`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from nuscenes.eval.common.config import config_factory
from nuscenes.eval.detection.evaluate import DetectionEval

from syncl_ros.classes import TRACKING_CLASSES
from syncl_ros.eval.tracking import (
    EvalError,
    check_coverage,
    check_not_empty,
    clean_number,
    load_results,
    quiet_devkit,
    split_sample_tokens,
)
from syncl_ros.pipeline.results import detection_box

CONFIG_NAME = "detection_cvpr_2019"


TP_ERRORS = {
    "mate": "trans_err",
    "mase": "scale_err",
    "maoe": "orient_err",
    "mave": "vel_err",
    "maae": "attr_err",
}


def as_detections(results: dict[str, Any]) -> dict[str, Any]:
    """Results as detection results: tracking boxes converted, detection boxes as they are."""
    converted = {
        token: [box if "detection_name" in box else detection_box(box) for box in boxes]
        for token, boxes in results["results"].items()
    }
    return {"meta": results["meta"], "results": converted}


def is_detection_results(results: dict[str, Any]) -> bool:
    """True when the boxes are detection boxes (``syncl track --detections``), not tracks."""
    first: Any = next((boxes[0] for boxes in results["results"].values() if boxes), {})
    return isinstance(first, dict) and "detection_name" in first


def evaluate_detection(
    results_path: str | os.PathLike[str],
    dataroot: str | os.PathLike[str],
    version: str,
    split: str,
) -> dict[str, Any]:
    """{"map", "nds", "mate" (mean translation error of matches, m), "mase", "maoe", "mave",
    "maae", "per_class_ap"} of tracking or detection results, over the tracking classes present.

    NDS follows the devkit's formula on those means; the network predicts no attributes, so its
    attribute error is 1 wherever the devkit scores attributes. Raises EvalError for inputs the
    devkit cannot score.
    """
    from nuscenes.nuscenes import NuScenes

    data = load_results(results_path)
    check_coverage(data["results"], split_sample_tokens(dataroot, version, split), split)
    check_not_empty(data["results"])
    with tempfile.TemporaryDirectory() as tmp, quiet_devkit(False):
        path = Path(tmp) / "detections.json"
        path.write_text(json.dumps(as_detections(data)))
        nusc = NuScenes(version, str(dataroot), verbose=False)
        cfg = config_factory(CONFIG_NAME)
        evaluator = DetectionEval(nusc, cfg, str(path), split, tmp, verbose=False)
        metrics, _ = evaluator.evaluate()
    summary = metrics.serialize()
    present = sorted({box.detection_name for box in evaluator.gt_boxes.all} & set(TRACKING_CLASSES))
    if not present:
        raise EvalError("the split holds no ground truth box of a tracking class")
    ap = {c: float(summary["mean_dist_aps"][c]) for c in present}
    mean_ap = sum(ap.values()) / len(ap)
    errors = {key: _mean_error(summary, present, name) for key, name in TP_ERRORS.items()}
    return {
        "map": clean_number(mean_ap),
        "nds": clean_number(_nds(mean_ap, errors)),
        **{key: clean_number(value) for key, value in errors.items()},
        "per_class_ap": {c: clean_number(ap[c]) if c in ap else None for c in TRACKING_CLASSES},
    }


def _mean_error(summary: dict[str, Any], classes: list[str], name: str) -> float | None:
    """Mean of one true-positive error over the classes where the devkit defines it."""
    values = [summary["label_tp_errors"][c][name] for c in classes]
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None


def _nds(mean_ap: float, errors: dict[str, float | None]) -> float:
    """nuScenes detection score: (5 mAP + sum of (1 - min(1, error)) over the five errors) / 10;
    an error no class defines counts as 1, as in the devkit."""
    scores = [1.0 - min(1.0, e) if e is not None else 0.0 for e in errors.values()]
    return (5.0 * mean_ap + sum(scores)) / 10.0
