"""Score nuScenes tracking results with the official devkit (TrackingEval).

Every number here comes from `nuscenes.eval.tracking`; this module only
checks inputs up front (so a bad submission gives one clear sentence instead
of a devkit assertion deep in a stack), runs the devkit, and reshapes its
summary into a small JSON-friendly dict:

    {"overall": {metric: value}, "per_class": {class: {metric: value}},
     "split", "version", "results_path", "eval_time_s", "meta"}

and, when asked for, "per_scene": {scene name: {metric: value}}.

Metric keys are the devkit's lowercase names (amota, amotp, motar, recall,
gt, mota, motp, mt, ml, faf, tp, fp, fn, ids, frag, tid, lgd); a value is
None where the devkit gives NaN (e.g. a class with no ground truth).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nuscenes.eval.common.config import config_factory
from nuscenes.eval.tracking.data_classes import TrackingConfig
from nuscenes.eval.tracking.evaluate import TrackingEval
from nuscenes.eval.tracking.utils import category_to_tracking_name
from nuscenes.utils.splits import create_splits_scenes

from syncl_ros.atomic import atomic_open

CONFIG_NAME = "tracking_nips_2019"
METRICS_FILE = "metrics.json"
# The order metrics are reported in: the headline ones first.
METRIC_ORDER: tuple[str, ...] = (
    "amota", "amotp", "mota", "motp", "recall", "ids", "frag",
    "tp", "fp", "fn", "mt", "ml", "faf", "tid", "lgd", "motar", "gt",
)  # fmt: skip
# Split name -> the suffix its dataset version must carry (the devkit's own pairing).
SPLIT_VERSION_SUFFIX: dict[str, str] = {
    "train": "trainval",
    "val": "trainval",
    "train_detect": "trainval",
    "train_track": "trainval",
    "mini_train": "mini",
    "mini_val": "mini",
    "test": "test",
}


class EvalError(Exception):
    """A problem with the inputs of an evaluation, worded for the person who ran it."""


def tracking_config() -> TrackingConfig:
    # Building the config also registers the tracking class names with the
    # devkit (a module global that TrackingBox validates against).
    return config_factory(CONFIG_NAME)


# --------------------------------------------------------------------- inputs


def load_results(results_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results JSON and check its outer shape ({"meta": {...}, "results": {token: [...]}})."""
    path = Path(results_path)
    if not path.is_file():
        raise EvalError(f"results file not found: {path}")
    try:
        with path.open() as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalError(f"results file is not valid JSON: {path} ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise EvalError(f'results file has no "results" mapping of sample token -> boxes: {path}')
    if not isinstance(data.get("meta"), dict):
        raise EvalError(f'results file has no "meta" object: {path}')
    return data


def _read_table(dataroot: Path, version: str, name: str) -> list[dict[str, Any]]:
    table = dataroot / version / f"{name}.json"
    if not table.is_file():
        raise EvalError(f"dataset table missing: {table} (is --dataroot/--version right?)")
    with table.open() as f:
        records: list[dict[str, Any]] = json.load(f)
    return records


def check_split(version: str, split: str) -> list[str]:
    """Scene names of a predefined split, after checking the split suits the dataset version."""
    scenes = create_splits_scenes()
    if split not in scenes or split not in SPLIT_VERSION_SUFFIX:
        known = ", ".join(sorted(SPLIT_VERSION_SUFFIX))
        raise EvalError(f"unknown split {split!r} (known: {known})")
    suffix = SPLIT_VERSION_SUFFIX[split]
    if not version.endswith(suffix):
        raise EvalError(f"split {split!r} belongs to a v1.0-{suffix} dataset, not version {version!r}")
    return list(scenes[split])


def split_sample_tokens(dataroot: str | os.PathLike[str], version: str, split: str) -> list[str]:
    """Sample tokens of the split's scenes present in the dataset, read from the raw tables.

    Reading scene.json/sample.json directly is much cheaper than building a
    NuScenes object, so inputs are checked before the devkit loads anything.
    """
    root = Path(dataroot)
    if not (root / version).is_dir():
        raise EvalError(f"dataset version {version!r} not found under {root}")
    wanted = set(check_split(version, split))
    scene_tokens = {s["token"] for s in _read_table(root, version, "scene") if s["name"] in wanted}
    if not scene_tokens:
        raise EvalError(f"the dataset at {root} ({version}) holds no scene of split {split!r}")
    return [s["token"] for s in _read_table(root, version, "sample") if s["scene_token"] in scene_tokens]


def check_coverage(results: Mapping[str, Any], expected: list[str], split: str) -> None:
    """The devkit requires the results to cover exactly the split's samples; say which are off."""
    given, wanted = set(results), set(expected)
    missing, extra = wanted - given, given - wanted
    if missing:
        example = sorted(missing)[0]
        raise EvalError(
            f"results miss {len(missing)} of the {len(wanted)} samples of split {split!r} "
            f"(e.g. {example}); every sample must be present, with an empty list if nothing was tracked"
        )
    if extra:
        example = sorted(extra)[0]
        raise EvalError(f"results hold {len(extra)} samples outside split {split!r} (e.g. {example})")


def check_not_empty(results: Mapping[str, Any]) -> None:
    """The devkit cannot score a submission without a single box (it fails looking for a box's
    class field); say so instead of reporting numbers it never computed."""
    if not any(results.values()):
        raise EvalError("the results hold no box at all; the devkit cannot score an empty submission")


def check_boxes(results: Mapping[str, Any], cfg: TrackingConfig) -> None:
    """Catch malformed boxes before the devkit asserts on them."""
    names = set(cfg.tracking_names)
    fields = ("translation", "size", "rotation", "velocity", "tracking_id", "tracking_name")
    check_not_empty(results)
    for token, boxes in results.items():
        if not isinstance(boxes, list):
            raise EvalError(f"results[{token!r}] must be a list of boxes")
        if len(boxes) > cfg.max_boxes_per_sample:
            raise EvalError(
                f"sample {token} has {len(boxes)} boxes; at most {cfg.max_boxes_per_sample} allowed"
            )
        for box in boxes:
            lacking = [f for f in fields if f not in box]
            if lacking:
                raise EvalError(f"a box of sample {token} lacks {', '.join(lacking)}")
            if box["tracking_name"] not in names:
                raise EvalError(
                    f"a box of sample {token} has tracking_name {box['tracking_name']!r}; "
                    f"expected one of {sorted(names)}"
                )


# ------------------------------------------------------------------- devkit


@contextlib.contextmanager
def quiet_devkit(verbose: bool) -> Iterator[None]:
    # The devkit shows tqdm bars on stderr even when verbose=False.
    if verbose:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def build_evaluator(
    results_path: str | os.PathLike[str],
    dataroot: str | os.PathLike[str],
    version: str,
    split: str,
    out_dir: str | os.PathLike[str],
    verbose: bool = False,
) -> TrackingEval:
    """Check the inputs, then let the devkit load ground truth and results into a TrackingEval."""
    cfg = tracking_config()
    data = load_results(results_path)
    check_coverage(data["results"], split_sample_tokens(dataroot, version, split), split)
    check_boxes(data["results"], cfg)
    try:
        with quiet_devkit(verbose):
            return TrackingEval(
                config=cfg,
                result_path=str(results_path),
                eval_set=split,
                output_dir=str(out_dir),
                nusc_version=version,
                nusc_dataroot=str(dataroot),
                verbose=verbose,
            )
    except (AssertionError, ValueError, KeyError) as exc:
        # Anything the checks above did not foresee: pass the devkit's own words on.
        raise EvalError(f"the nuScenes devkit rejected the inputs: {exc or type(exc).__name__}") from exc


def clean_number(value: Any) -> float | int | None:
    """JSON-safe number: NaN/inf -> None, integral counts -> int."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def summarize(summary: Mapping[str, Any], class_names: list[str]) -> dict[str, Any]:
    """Reshape the devkit's metrics summary into overall + per-class tables."""
    label = summary["label_metrics"]
    overall = {m: clean_number(summary[m]) for m in METRIC_ORDER}
    per_class = {c: {m: clean_number(label[m][c]) for m in METRIC_ORDER} for c in class_names}
    return {"overall": overall, "per_class": per_class, "eval_time_s": summary.get("eval_time")}


def write_metrics(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Atomically (temp file + os.replace), so a reader never sees half a file; strict JSON, no NaN."""
    with atomic_open(Path(path), "w") as f:
        json.dump(metrics, f, indent=2, allow_nan=False)
        f.write("\n")


def run_tracking_eval(
    results_path: str | os.PathLike[str],
    dataroot: str | os.PathLike[str],
    version: str,
    split: str,
    out_dir: str | os.PathLike[str],
    verbose: bool = False,
    render_curves: bool = False,
) -> tuple[dict[str, Any], TrackingEval]:
    """Run the evaluation; return the metrics dict and the devkit evaluator (for per-scene scoring)."""
    out = Path(out_dir)
    # Inputs are checked before anything is written; the devkit then creates out_dir.
    evaluator = build_evaluator(results_path, dataroot, version, split, out, verbose)
    # main() writes metrics_summary.json / metrics_details.json into out_dir.
    with quiet_devkit(verbose):
        summary = evaluator.main(render_curves=render_curves)
    metrics = summarize(summary, evaluator.cfg.class_names)
    metrics.update(split=split, version=version, results_path=str(results_path), meta=summary.get("meta", {}))
    write_metrics(metrics, out / METRICS_FILE)
    return metrics, evaluator


def evaluate_tracking(
    results_path: str | os.PathLike[str],
    dataroot: str | os.PathLike[str],
    version: str,
    split: str,
    out_dir: str | os.PathLike[str],
    verbose: bool = False,
) -> dict[str, Any]:
    """Score a results JSON on a split with the official metrics; also writes out_dir/metrics.json.

    Raises EvalError for bad inputs (missing file, samples missing, split/version mismatch).
    """
    metrics, _ = run_tracking_eval(results_path, dataroot, version, split, out_dir, verbose)
    return metrics


def scene_metrics(evaluator: TrackingEval, scene_token: str) -> dict[str, Any]:
    """The devkit's overall metrics restricted to one scene (a shallow copy of the evaluator
    whose ground-truth and predicted tracks hold only that scene)."""
    if scene_token not in evaluator.tracks_gt:
        raise EvalError(f"scene {scene_token} is not part of the evaluated split")
    one = copy.copy(evaluator)
    one.verbose = False
    one.tracks_gt = {scene_token: evaluator.tracks_gt[scene_token]}
    one.tracks_pred = {scene_token: evaluator.tracks_pred[scene_token]}
    with quiet_devkit(False):
        metrics, _ = one.evaluate()
    return {m: clean_number(metrics.compute_metric(m)) for m in METRIC_ORDER}


def per_scene_metrics(
    evaluator: TrackingEval, dataroot: str | os.PathLike[str], version: str
) -> dict[str, dict[str, Any]]:
    """Each evaluated scene's overall metrics, keyed by scene name, in name order: how far one
    scene's figures stray from the split's (a single scene is a noisy measure)."""
    names = {s["token"]: s["name"] for s in _read_table(Path(dataroot), version, "scene")}
    tokens = sorted(evaluator.tracks_gt, key=lambda t: names[t])
    return {names[t]: scene_metrics(evaluator, t) for t in tokens}


# ------------------------------------------------------------ scored objects


def sample_ego_xy(nusc: Any, sample: Mapping[str, Any]) -> tuple[float, float]:
    """The ego's world x, y at a sample (its LIDAR_TOP pose, from which the metrics measure range)."""
    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    x, y = nusc.get("ego_pose", lidar["ego_pose_token"])["translation"][:2]
    return float(x), float(y)


def scored_tracking_name(
    ann: Mapping[str, Any], ego_xy: tuple[float, float], class_range: Mapping[str, float]
) -> str | None:
    """An annotation's tracking class if the tracking metrics score it (a tracking class, lidar or
    radar points, within its `class_range` of the ego: `tracking_config().class_range`), else None."""
    name = category_to_tracking_name(ann["category_name"])
    if name is None or ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
        return None
    return name if in_class_range(ann["translation"][:2], ego_xy, class_range, name) else None


def in_class_range(
    xy: Sequence[float], ego_xy: tuple[float, float], class_range: Mapping[str, float], name: str
) -> bool:
    """Whether a world point lies within class `name`'s range of the ego, as the metrics filter
    both the ground truth and the results."""
    return math.hypot(xy[0] - ego_xy[0], xy[1] - ego_xy[1]) <= class_range[name]


# ------------------------------------------------------------------ oracle


def ground_truth_results(nusc: Any, split: str) -> dict[str, Any]:
    """The split's ground truth in results format (tracking_id = instance token, score 1).

    Uses the devkit's own ground-truth loader, and keeps only boxes the
    devkit scores (it drops boxes with no lidar/radar points), so this
    submission should reach AMOTA 1. Useful as an oracle and in tests.
    """
    from nuscenes.eval.common.loaders import load_gt
    from nuscenes.eval.tracking.data_classes import TrackingBox

    tracking_config()  # registers the class names TrackingBox checks
    with quiet_devkit(False):
        gt = load_gt(nusc, split, TrackingBox, verbose=False)
    results: dict[str, list[dict[str, Any]]] = {}
    for token in gt.sample_tokens:
        results[token] = [_gt_box_as_result(box) for box in gt[token] if box.num_pts != 0]
    return {"meta": results_meta(), "results": results}


def _gt_box_as_result(box: Any) -> dict[str, Any]:
    # A lone annotation has no velocity estimate (NaN); JSON wants a number.
    velocity = [v if math.isfinite(v) else 0.0 for v in map(float, box.velocity)]
    return {
        "sample_token": box.sample_token,
        "translation": [float(v) for v in box.translation],
        "size": [float(v) for v in box.size],
        "rotation": [float(v) for v in box.rotation],
        "velocity": velocity,
        "tracking_id": box.tracking_id,
        "tracking_name": box.tracking_name,
        "tracking_score": 1.0,
    }


def results_meta() -> dict[str, bool]:
    """The meta block of a camera-only submission."""
    return {
        "use_camera": True,
        "use_lidar": False,
        "use_radar": False,
        "use_map": False,
        "use_external": False,
    }
