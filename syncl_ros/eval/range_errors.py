"""Where a camera detector's boxes go wrong: range and lateral error of confident boxes, by range.

A camera sees direction well and distance poorly, so the error of a box splits into a range
part (along the line of sight from the ego to the object) and a lateral part (across it), and
both are read per bin of the object's range. The tracking metrics match within 2 m, so a range
error that grows past that with distance is what caps recall far away.

Boxes scoring at least `min_score` are matched to the ground truth of their class greedily,
best score first, each to its nearest unmatched object within `match_m` (the devkit's detection
matching, at a wider distance so that the errors are seen, not cut off at 2 m). The objects are
those the tracking metrics score: a tracking class, within its class range, with lidar or radar
points. Per range bin: the objects, the share matched, and the median absolute range error,
the median signed range error (positive: boxes placed too far) and the median lateral error of
the matches.

    python -m syncl_ros.eval.range_errors RESULTS.json [...] --dataroot D --split val
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from nuscenes import NuScenes

from syncl_ros.eval.results_cli import add_results_arguments, load_split_results
from syncl_ros.eval.tracking import EvalError, sample_ego_xy, scored_tracking_name, tracking_config

BIN_EDGES_M = (0.0, 10.0, 20.0, 35.0, float("inf"))
MIN_SCORE = 0.4
MATCH_M = 4.0


@dataclass(frozen=True)
class Objects:
    """The scored ground truth of one sample: names (K,), world centers (K, 2), ego (2,)."""

    names: list[str]
    centers: NDArray[np.float64]
    ego_xy: NDArray[np.float64]


@dataclass(frozen=True)
class Errors:
    """Per ground-truth object: its range, and the range and lateral error of its match (NaN: none)."""

    range_m: NDArray[np.float64]
    range_err: NDArray[np.float64]
    lateral_err: NDArray[np.float64]


def scored_objects(nusc: NuScenes, sample_token: str) -> Objects:
    """The objects of a sample that the tracking metrics score."""
    sample = nusc.get("sample", sample_token)
    ego_xy, ranges = sample_ego_xy(nusc, sample), tracking_config().class_range
    names, centers = [], []
    for token in sample["anns"]:
        ann = nusc.get("sample_annotation", token)
        name = scored_tracking_name(ann, ego_xy, ranges)
        if name is not None:
            names.append(name)
            centers.append(ann["translation"][:2])
    return Objects(names, np.asarray(centers, float).reshape(-1, 2), np.asarray(ego_xy, float))


def _box_name_score(box: Mapping[str, Any]) -> tuple[str, float]:
    """Class and score of a tracking or detection results box."""
    if "tracking_name" in box:
        return str(box["tracking_name"]), float(box["tracking_score"])
    return str(box["detection_name"]), float(box["detection_score"])


def assign(
    objects: Objects, boxes: Sequence[Mapping[str, Any]], min_score: float, match_m: float
) -> NDArray[np.int64]:
    """(len(boxes),) the object each box matches, -1 for none: boxes scoring at least `min_score`,
    best score first, each to the nearest unmatched object of its class within `match_m`."""
    k = len(objects.names)
    owner = np.full(len(boxes), -1, dtype=np.int64)
    taken = np.zeros(k, dtype=bool)
    named = [_box_name_score(b) for b in boxes]
    confident = [i for i, (_, s) in enumerate(named) if s >= min_score]
    names = np.asarray(objects.names, dtype=object)
    for i in sorted(confident, key=lambda i: -named[i][1]):  # stable: ties keep the file's order
        d = np.asarray(boxes[i]["translation"][:2], float) - objects.centers
        dist = np.where((names == named[i][0]) & ~taken, np.hypot(d[:, 0], d[:, 1]), np.inf)
        j = int(np.argmin(dist)) if k else -1
        if j >= 0 and dist[j] <= match_m:
            taken[j] = True
            owner[i] = j
    return owner


def match(objects: Objects, boxes: Sequence[Mapping[str, Any]], min_score: float, match_m: float) -> Errors:
    """Greedy matching of the confident boxes to the objects; the errors of each object's match."""
    k = len(objects.names)
    offset = objects.centers - objects.ego_xy
    range_m = np.hypot(offset[:, 0], offset[:, 1])
    sight = offset / np.maximum(range_m, 1e-9)[:, None]  # unit line of sight, ego -> object
    range_err, lateral_err = np.full(k, np.nan), np.full(k, np.nan)
    for i, j in enumerate(assign(objects, boxes, min_score, match_m)):
        if j < 0:
            continue
        d = np.asarray(boxes[i]["translation"][:2], float) - objects.centers[j]
        range_err[j] = float(d @ sight[j])
        lateral_err[j] = abs(float(d[0] * sight[j, 1] - d[1] * sight[j, 0]))
    return Errors(range_m, range_err, lateral_err)


def errors_by_range(errors: Sequence[Errors]) -> list[dict[str, float]]:
    """One row per range bin: objects, share matched, median |range|, signed range, lateral error."""
    r = np.concatenate([e.range_m for e in errors]) if errors else np.empty(0)
    er = np.concatenate([e.range_err for e in errors]) if errors else np.empty(0)
    el = np.concatenate([e.lateral_err for e in errors]) if errors else np.empty(0)
    rows = []
    for lo, hi in itertools.pairwise(BIN_EDGES_M):
        inside = (r >= lo) & (r < hi)
        hit = inside & np.isfinite(er)
        any_hit = bool(hit.any())
        rows.append(
            {
                "from_m": lo,
                "to_m": hi,
                "objects": float(inside.sum()),
                "matched": float(hit.sum() / inside.sum()) if inside.any() else float("nan"),
                "range_abs_m": float(np.median(np.abs(er[hit]))) if any_hit else float("nan"),
                "range_signed_m": float(np.median(er[hit])) if any_hit else float("nan"),
                "lateral_m": float(np.median(el[hit])) if any_hit else float("nan"),
            }
        )
    return rows


def range_table(
    nusc: NuScenes,
    samples: Sequence[str],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    min_score: float = MIN_SCORE,
    match_m: float = MATCH_M,
) -> list[dict[str, float]]:
    """The rows of `errors_by_range` for one results mapping (sample token -> boxes)."""
    per_sample = [match(scored_objects(nusc, t), results.get(t, []), min_score, match_m) for t in samples]
    return errors_by_range(per_sample)


def format_table(name: str, rows: Sequence[Mapping[str, float]]) -> str:
    """A markdown table of one results file's rows."""
    lines = [
        f"{name}:",
        "| range | objects | matched | median range error | median signed | median lateral |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        hi = "" if np.isinf(row["to_m"]) else f"{row['to_m']:.0f}"
        span = f"{row['from_m']:.0f}–{hi} m" if hi else f"≥ {row['from_m']:.0f} m"
        lines.append(
            f"| {span} | {row['objects']:.0f} | {row['matched']:.3f} | {row['range_abs_m']:.2f} m "
            f"| {row['range_signed_m']:+.2f} m | {row['lateral_m']:.2f} m |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m syncl_ros.eval.range_errors", description=doc)
    add_results_arguments(p, "nuScenes tracking or detection results JSON")
    p.add_argument("--min-score", type=float, default=MIN_SCORE, help=f"(default {MIN_SCORE})")
    p.add_argument("--match-m", type=float, default=MATCH_M, help=f"(default {MATCH_M} m)")
    args = p.parse_args(argv)
    try:
        samples, loaded = load_split_results(args)
    except EvalError as err:
        print(f"range_errors: {err}", file=sys.stderr)
        return 2
    nusc = NuScenes(args.version, str(args.dataroot), verbose=False)
    for name, results in loaded.items():
        print(format_table(name, range_table(nusc, samples, results, args.min_score, args.match_m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
