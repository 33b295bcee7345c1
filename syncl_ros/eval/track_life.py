"""Where a tracker's false positives lie along its tracks, and how well its scores rank them.

The tracking metrics replace every box's score by the mean score of its track before they sweep
the score threshold, so a track is kept or dropped whole: boxes that a track reports while it is
off its object (before it finds it, between two stretches on it, after it has lost it) cost
false positives at every threshold that keeps the track, and count in its mean score.

Each reported box within its class's range of the ego (the metrics drop the others) is
matched to the scored ground truth of its class within `match_m` (2 m, the metrics'
distance), greedily, best score first (`range_errors.assign`). Per results file:

- boxes, and the share matched;
- tracks, and those never matched (their boxes are all false positives);
- the false positives of the other tracks: before their first match, in gaps between matches,
  after their last match;
- how well a score separates matched from unmatched boxes (ROC AUC, 0.5: not at all), for the
  box's own score and for its track's mean score (what the metrics threshold);
- duplicates: unmatched boxes on an object that another box matched (two tracks on one object);
- by the box's place along its track (its first, second, ... box; `AGE_BINS`): boxes, the share
  matched, and the mean score of matched and of unmatched boxes. A tracker whose carried
  tracks score lower than its new ones, or whose short false tracks score like true ones,
  shows it here.

    python -m syncl_ros.eval.track_life RESULTS.json [...] --dataroot D --split val
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from nuscenes import NuScenes
from scipy.stats import rankdata

from syncl_ros.eval.range_errors import Objects, assign, scored_objects
from syncl_ros.eval.results_cli import add_results_arguments, load_split_results
from syncl_ros.eval.tracking import EvalError, in_class_range, tracking_config

MATCH_M = 2.0
COLUMNS = (
    "boxes",
    "matched",
    "tracks",
    "never_matched_tracks",
    "fp_never_matched",
    "fp_before_first",
    "fp_gaps",
    "fp_after_last",
    "auc_box_score",
    "auc_track_mean",
    "duplicates",
)

AGE_BINS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 7), (8, None))  # box index along its track, inclusive


def roc_auc(positive: ArrayLike, score: ArrayLike) -> float:
    """Probability that a random positive outscores a random negative (ties count half); NaN
    without both. The Mann-Whitney statistic, from the ranks."""
    pos, s = np.asarray(positive, dtype=bool), np.asarray(score, dtype=float)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def check_tracking(name: str, results: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """EvalError unless every box carries a tracking id and score (detection results do not)."""
    for boxes in results.values():
        for box in boxes:
            if "tracking_id" not in box or "tracking_score" not in box:
                raise EvalError(f"{name}: boxes without tracking_id/tracking_score: not tracking results")


def time_order(nusc: NuScenes, samples: Sequence[str]) -> list[str]:
    """The samples by scene, then time: the order in which a track's boxes are read."""

    def key(token: str) -> tuple[str, int]:
        sample = nusc.get("sample", token)
        return str(sample["scene_token"]), int(sample["timestamp"])

    return sorted(samples, key=key)


def scored_boxes(
    objects: Objects, results: Mapping[str, Sequence[Mapping[str, Any]]], token: str
) -> list[Mapping[str, Any]]:
    """The sample's results boxes that the metrics keep: those within their class's range of the ego."""
    ranges = tracking_config().class_range
    ego = (float(objects.ego_xy[0]), float(objects.ego_xy[1]))
    return [
        b
        for b in results.get(token, [])
        if in_class_range(b["translation"][:2], ego, ranges, str(b["tracking_name"]))
    ]


@dataclass(frozen=True)
class SampleMatch:
    """One sample's kept results boxes and the object each matched (-1: none)."""

    scene: str
    objects: Objects
    boxes: list[Mapping[str, Any]]
    owner: NDArray[np.int64]


def match_samples(
    nusc: NuScenes, samples: Sequence[str], results: Mapping[str, Sequence[Mapping[str, Any]]], match_m: float
) -> list[SampleMatch]:
    """Every sample's boxes matched to its scored objects, by scene and then time: computed once,
    read by `track_lives` and `duplicates`."""
    matches = []
    for token in time_order(nusc, samples):
        objects = scored_objects(nusc, token)
        boxes = scored_boxes(objects, results, token)
        owner = assign(objects, boxes, min_score=-np.inf, match_m=match_m)
        matches.append(SampleMatch(str(nusc.get("sample", token)["scene_token"]), objects, boxes, owner))
    return matches


def track_lives(matches: Sequence[SampleMatch]) -> dict[tuple[str, str], list[tuple[bool, float]]]:
    """(scene, tracking id) -> (matched, score) of each of the track's boxes, in time order."""
    lives: dict[tuple[str, str], list[tuple[bool, float]]] = defaultdict(list)
    for m in matches:
        for box, j in zip(m.boxes, m.owner, strict=True):
            lives[(m.scene, str(box["tracking_id"]))].append((bool(j >= 0), float(box["tracking_score"])))
    return lives


def duplicates(matches: Sequence[SampleMatch], match_m: float) -> int:
    """Unmatched boxes within `match_m` of an object of their class that a better box matched:
    a second track on one object."""
    count = 0
    for m in matches:
        taken = np.unique(m.owner[m.owner >= 0])
        names = np.asarray(m.objects.names, dtype=object)[taken]
        for box, j in zip(m.boxes, m.owner, strict=True):
            if j >= 0:
                continue
            d = np.hypot(*(m.objects.centers[taken] - np.asarray(box["translation"][:2], float)).T)
            count += int(((names == box["tracking_name"]) & (d <= match_m)).any())
    return count


def summarize(lives: Mapping[tuple[str, str], Sequence[tuple[bool, float]]]) -> dict[str, float]:
    """The `COLUMNS` of a set of track lives."""
    row = dict.fromkeys(COLUMNS, 0.0)
    row["duplicates"] = float("nan")  # needs the objects' positions: `duplicates`
    matched, box_score, track_mean = [], [], []
    for life in lives.values():
        hits = np.array([m for m, _ in life], dtype=bool)
        scores = np.array([s for _, s in life], dtype=float)
        matched.append(hits)
        box_score.append(scores)
        track_mean.append(np.full(len(life), scores.mean()))
        row["tracks"] += 1
        if not hits.any():
            row["never_matched_tracks"] += 1
            row["fp_never_matched"] += len(life)
            continue
        first, last = int(np.argmax(hits)), len(hits) - 1 - int(np.argmax(hits[::-1]))
        row["fp_before_first"] += first
        row["fp_after_last"] += len(hits) - 1 - last
        row["fp_gaps"] += int((~hits[first:last]).sum())
    hits_all = np.concatenate(matched) if matched else np.zeros(0, dtype=bool)
    row["boxes"] = float(len(hits_all))
    row["matched"] = float(hits_all.mean()) if len(hits_all) else float("nan")
    row["auc_box_score"] = roc_auc(hits_all, np.concatenate(box_score) if box_score else [])
    row["auc_track_mean"] = roc_auc(hits_all, np.concatenate(track_mean) if track_mean else [])
    return row


def by_age(lives: Mapping[tuple[str, str], Sequence[tuple[bool, float]]]) -> list[dict[str, float]]:
    """Per `AGE_BINS` bin: boxes, share matched, mean score of matched and of unmatched boxes (NaN: none)."""
    rows = []
    for low, high in AGE_BINS:
        picked = [box for life in lives.values() for box in life[low : None if high is None else high + 1]]
        hits = np.array([m for m, _ in picked], dtype=bool)
        scores = np.array([s for _, s in picked], dtype=float)
        rows.append(
            {
                "low": float(low),
                "high": float("inf") if high is None else float(high),
                "boxes": float(len(picked)),
                "matched": float(hits.mean()) if len(picked) else float("nan"),
                "score_matched": float(scores[hits].mean()) if hits.any() else float("nan"),
                "score_unmatched": float(scores[~hits].mean()) if (~hits).any() else float("nan"),
            }
        )
    return rows


def _place(low: float, high: float) -> str:
    """A bin of 0-based box indices as 1-based places: "1", "5-8", "9+"."""
    first = int(low) + 1
    if high == low:
        return str(first)
    return f"{first}+" if high == float("inf") else f"{first}-{int(high) + 1}"


def format_age_table(rows: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """A markdown table: one row per results file and place along the track."""
    lines = [
        "| results | box along its track | boxes | matched | mean score, matched | mean score, unmatched |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, bins in rows.items():
        for r in bins:
            lines.append(
                f"| {name} | {_place(r['low'], r['high'])} | {r['boxes']:.0f} | {r['matched']:.3f} "
                f"| {r['score_matched']:.3f} | {r['score_unmatched']:.3f} |"
            )
    return "\n".join(lines)


def format_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table, one row per results file."""
    head = (
        "| results | boxes | matched | tracks | never matched | FP: never-matched tracks "
        "| before first match | gaps | after last match | AUC box score | AUC track mean | duplicates |"
    )
    lines = [head, "|---|" + "---:|" * 11]
    for name, r in rows.items():
        counts = " | ".join(f"{r[c]:.0f}" for c in COLUMNS[4:8])
        lines.append(
            f"| {name} | {r['boxes']:.0f} | {r['matched']:.3f} | {r['tracks']:.0f} "
            f"| {r['never_matched_tracks']:.0f} | {counts} | {r['auc_box_score']:.3f} "
            f"| {r['auc_track_mean']:.3f} | {r['duplicates']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m syncl_ros.eval.track_life", description=doc)
    add_results_arguments(p, "nuScenes tracking results JSON")
    p.add_argument("--match-m", type=float, default=MATCH_M, help=f"(default {MATCH_M} m)")
    args = p.parse_args(argv)
    try:
        samples, loaded = load_split_results(args)
        for name, res in loaded.items():
            check_tracking(name, res)
    except EvalError as err:
        print(f"track_life: {err}", file=sys.stderr)
        return 2
    nusc = NuScenes(args.version, str(args.dataroot), verbose=False)
    matches = {name: match_samples(nusc, samples, res, args.match_m) for name, res in loaded.items()}
    lives = {name: track_lives(m) for name, m in matches.items()}
    rows = {}
    for name, m in matches.items():
        rows[name] = {**summarize(lives[name]), "duplicates": duplicates(m, args.match_m)}
    print(format_table(rows))
    print()
    print(format_age_table({name: by_age(life) for name, life in lives.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
