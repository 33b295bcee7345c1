"""Recall of the ground-truth objects each camera sees: what losing one camera costs, and where.

The official metrics are rig-wide; a camera that fails should cost the objects in its own view
and nothing else. For every annotation of a tracking class, the cameras that see it are the
devkit's (`NuScenes.get_sample_data` with any corner in the image), among the objects the
tracking metrics score (class range, lidar or radar points); it counts as found when a
reported box of the same class lies within 2 m of its center at that sample (the distance the
tracking metrics match at). Scores are not thresholded: every reported box counts, as the
tracker already filtered them.

    python -m syncl_ros.eval.by_camera RESULTS.json [RESULTS.json ...] --dataroot D --split val
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from nuscenes import NuScenes
from nuscenes.utils.geometry_utils import BoxVisibility

from syncl_ros.eval.results_cli import add_results_arguments, load_split_results
from syncl_ros.eval.tracking import EvalError, sample_ego_xy, scored_tracking_name, tracking_config
from syncl_ros.rig import CAMERA_CHANNELS

MATCH_M = 2.0  # the tracking metrics' center-distance threshold


def visible_objects(nusc: NuScenes, sample_token: str) -> dict[str, list[tuple[str, NDArray[np.float64]]]]:
    """Per camera: (tracking name, world center (2,)) of each object it sees that the tracking
    metrics score (a tracking class, within its class range of the ego, with lidar or radar points)."""
    sample = nusc.get("sample", sample_token)
    ego_xy, ranges = sample_ego_xy(nusc, sample), tracking_config().class_range
    seen: dict[str, list[tuple[str, NDArray[np.float64]]]] = {}
    for channel in CAMERA_CHANNELS:
        _, boxes, _ = nusc.get_sample_data(sample["data"][channel], box_vis_level=BoxVisibility.ANY)
        objects = []
        for box in boxes:  # in the camera frame; the annotation has the world center
            ann = nusc.get("sample_annotation", box.token)
            name = scored_tracking_name(ann, ego_xy, ranges)
            if name is not None:
                objects.append((name, np.asarray(ann["translation"][:2], float)))
        seen[channel] = objects
    return seen


def found(name: str, center: NDArray[np.float64], reported: Sequence[Mapping[str, Any]]) -> bool:
    """A reported box of this class within MATCH_M of the center."""
    return any(
        box["tracking_name"] == name
        and np.hypot(*(np.asarray(box["translation"][:2], float) - center)) <= MATCH_M
        for box in reported
    )


Visibility = dict[str, dict[str, list[tuple[str, NDArray[np.float64]]]]]  # sample -> camera -> objects


def visibility(nusc: NuScenes, samples: Sequence[str]) -> Visibility:
    return {token: visible_objects(nusc, token) for token in samples}


def recall_by_camera(seen: Visibility, results: Mapping[str, Any]) -> dict[str, float]:
    """Per camera: the share of the objects it sees that a reported box found."""
    hits = dict.fromkeys(CAMERA_CHANNELS, 0)
    totals = dict.fromkeys(CAMERA_CHANNELS, 0)
    for token, cameras in seen.items():
        reported = results.get(token, [])
        for channel, objects in cameras.items():
            totals[channel] += len(objects)
            hits[channel] += sum(found(name, center, reported) for name, center in objects)
    return {c: hits[c] / totals[c] if totals[c] else float("nan") for c in CAMERA_CHANNELS}


def format_rows(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table: one row per results file, one column per camera."""
    short = [c.removeprefix("CAM_").lower() for c in CAMERA_CHANNELS]
    lines = ["| results | " + " | ".join(short) + " |", "|---|" + "---:|" * len(short)]
    for name, recall in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{recall[c]:.3f}" for c in CAMERA_CHANNELS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m syncl_ros.eval.by_camera", description=__doc__.split("\n")[0])
    add_results_arguments(p, "nuScenes tracking results JSON files")
    args = p.parse_args(argv)
    try:
        samples, loaded = load_split_results(args)
    except EvalError as err:
        print(f"by_camera: {err}", file=sys.stderr)
        return 2
    seen = visibility(NuScenes(args.version, str(args.dataroot), verbose=False), samples)
    print(format_rows({name: recall_by_camera(seen, results) for name, results in loaded.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
