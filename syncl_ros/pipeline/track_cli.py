"""`syncl track`: offline tracking over a split -> nuScenes tracking results JSON (for `syncl eval`);
with ``--detections``, the detector alone -> nuScenes detection results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.inference.default_model import default_model_path
from syncl_ros.tracking.config import TRACKING_METHODS
from syncl_ros.tracking.detector_only import DEFAULT_MAX_BOXES, MAX_BOXES_LIMIT


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataroot", type=Path, help="nuScenes-format dataset folder")
    p.add_argument("--version", default="v1.0-trainval", help="dataset version (default: v1.0-trainval)")
    p.add_argument("--split", default="val", help="split whose scenes are tracked (default: val)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--out", type=Path, required=True, help="results JSON to write")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch: the checkpoint; onnxruntime: its exported graphs, as the node runs them "
        "(exported into the cache folder on first use) (default: torch)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="tracker.KEY=VALUE",
        help="override a runtime-tracker setting, e.g. --set tracker.birth_score=0.3",
    )
    p.add_argument(
        "--tracker",
        choices=TRACKING_METHODS,
        default=None,
        help="queries: the network's track queries; greedy: its per-frame detections linked by a "
        "CenterPoint-style center-distance tracker (default: the model's tracker.method)",
    )
    p.add_argument(
        "--detections",
        action="store_true",
        help="write nuScenes detection results instead: the detector alone, each frame's top "
        "--max-boxes (query, class) pairs whatever their score, unlinked (for mAP and NDS with "
        "syncl eval)",
    )
    p.add_argument(
        "--max-boxes",
        type=int,
        default=DEFAULT_MAX_BOXES,
        help="boxes per frame with --detections, 1 to 500 (the benchmark's limit) (default: %(default)s)",
    )
    p.add_argument(
        "--without-camera",
        dest="without",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="track as if this camera had failed for the whole run (repeatable), e.g. CAM_FRONT",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from syncl_ros.pipeline.offline import detect_split, track_split

    try:
        if args.detections and (args.tracker or args.overrides):
            raise ValueError("--detections runs the detector alone: it takes no --tracker or --set")
        if args.max_boxes != DEFAULT_MAX_BOXES and not args.detections:
            raise ValueError("--max-boxes goes with --detections (a tracker keeps its own boxes)")
        if not 1 <= args.max_boxes <= MAX_BOXES_LIMIT:
            raise ValueError(f"--max-boxes: expected 1 to {MAX_BOXES_LIMIT}, got {args.max_boxes}")
        model = args.model or default_model_path()
        common = {"without": args.without, "backend_name": args.backend}
        where = (args.dataroot, args.version, args.split, model, args.out, args.device, not args.no_progress)
        if args.detections:
            stats = detect_split(*where, args.max_boxes, **common)
        else:
            stats = track_split(*where, args.overrides, args.tracker, **common)
    except (FileNotFoundError, ValueError) as err:  # ConfigError is a ValueError
        print(f"syncl track: {err}", file=sys.stderr)
        return 2
    print(
        f"syncl track: {stats['samples']} samples of {stats['scenes']} scenes, {stats['boxes']} boxes "
        f"({stats['mean_boxes']:.1f} per sample) -> {args.out}"
    )
    return 0
