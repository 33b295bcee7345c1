"""Detection metrics of tracking results with the official devkit (DetectionEval).

Early in training a tracker localizes objects to a few metres: AMOTA, which
matches within 2 m, stays at 0 while detection mAP, averaged over the 0.5, 1, 2
and 4 m thresholds, already moves. Learning curves therefore report both.

The tracking boxes are scored as detections (tracking score as detection
score) with the devkit's official detection config. That config insists on
all ten detection classes, so the devkit also reports the three classes a
tracker never outputs (barrier, traffic cone, construction vehicle); mAP and
mATE here are the means of the devkit's per-class values over the tracking
classes that have ground truth in the split. Every per-class number comes from
`nuscenes.eval.detection`.
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

CONFIG_NAME = "detection_cvpr_2019"


def as_detections(results: dict[str, Any]) -> dict[str, Any]:
    """Tracking results -> detection results (same boxes, tracking score as detection score)."""
    keep = ("sample_token", "translation", "size", "rotation", "velocity")
    converted = {
        token: [
            {
                **{k: box[k] for k in keep},
                "detection_name": box["tracking_name"],
                "detection_score": box["tracking_score"],
                "attribute_name": "",
            }
            for box in boxes
        ]
        for token, boxes in results["results"].items()
    }
    return {"meta": results["meta"], "results": converted}


def evaluate_detection(
    results_path: str | os.PathLike[str],
    dataroot: str | os.PathLike[str],
    version: str,
    split: str,
) -> dict[str, Any]:
    """{"map", "mate" (mean translation error of matches, m), "per_class_ap"} of tracking results.

    Raises EvalError for inputs the devkit cannot score.
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
    trans = [summary["label_tp_errors"][c]["trans_err"] for c in present]
    trans = [float(t) for t in trans if t is not None and math.isfinite(float(t))]
    return {
        "map": clean_number(sum(ap.values()) / len(ap)),
        "mate": clean_number(sum(trans) / len(trans)) if trans else None,
        "per_class_ap": {c: clean_number(ap[c]) if c in ap else None for c in TRACKING_CLASSES},
    }
