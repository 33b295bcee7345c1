"""`syncl eval RESULTS --dataroot D --version V --split S --out DIR [--per-scene]`.

Scores a nuScenes tracking results JSON with the official devkit, writes
DIR/metrics.json (plus the devkit's metrics_summary.json and
metrics_details.json), a per-class AMOTA bar chart and a bird's-eye view of
one scene, and prints a short table. Detection results (`syncl track
--detections`) get the devkit's detection metrics instead (mAP, NDS, true
positive errors, AP per class) in DIR/metrics.json, without plots.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncl_ros.eval.detection import evaluate_detection, is_detection_results
from syncl_ros.eval.tracking import (
    EvalError,
    check_split,
    load_results,
    per_scene_metrics,
    run_tracking_eval,
    scene_metrics,
    write_metrics,
)

AMOTA_PNG = "amota_per_class.png"
# Columns of the printed table: (metric key, header, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("amota", "AMOTA", ".3f"),
    ("amotp", "AMOTP", ".3f"),
    ("mota", "MOTA", ".3f"),
    ("motp", "MOTP", ".3f"),
    ("recall", "RECALL", ".3f"),
    ("ids", "IDS", "d"),
    ("frag", "FRAG", "d"),
    ("tp", "TP", "d"),
    ("fp", "FP", "d"),
    ("fn", "FN", "d"),
)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="nuScenes tracking results JSON")
    p.add_argument("--dataroot", type=Path, required=True, help="nuScenes-format dataset root")
    p.add_argument("--version", default="v1.0-trainval", help="dataset version (default: %(default)s)")
    p.add_argument("--split", default="val", help="split to score, e.g. val, mini_val (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="output folder for metrics and plots")
    p.add_argument("--scene", help="scene name for the bird's-eye view (default: first scene of the split)")
    p.add_argument(
        "--per-scene",
        action="store_true",
        help="also score each scene on its own (metrics.json 'per_scene', a printed table)",
    )
    p.add_argument("--no-plots", action="store_true", help="write metrics only")
    p.add_argument("--render-curves", action="store_true", help="also keep the devkit's PDF metric curves")
    p.add_argument("--verbose", action="store_true", help="show the devkit's own progress output")


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return format(int(value) if spec == "d" else value, spec)


def format_table(metrics: Mapping[str, Any]) -> str:
    """Overall row, then one row per class; '-' where a class has no ground truth."""
    header = f"{'class':<12}" + "".join(f"{h:>8}" for _, h, _ in COLUMNS)
    rows = [("overall", metrics["overall"]), *metrics["per_class"].items()]
    lines = [header, "-" * len(header)]
    for i, (name, values) in enumerate(rows):
        lines.append(f"{name:<12}" + "".join(f"{_cell(values[k], s):>8}" for k, _, s in COLUMNS))
        if i == 0:
            lines.append("-" * len(header))
    return "\n".join(lines)


PER_SCENE_COLUMNS = tuple(c for c in COLUMNS if c[0] in ("amota", "mota", "recall", "ids", "fp", "fn"))


def format_scene_table(per_scene: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per scene, then the spread of their AMOTA."""
    header = f"{'scene':<14}" + "".join(f"{h:>8}" for _, h, _ in PER_SCENE_COLUMNS)
    lines = [header, "-" * len(header)]
    for name, values in per_scene.items():
        lines.append(f"{name:<14}" + "".join(f"{_cell(values[k], s):>8}" for k, _, s in PER_SCENE_COLUMNS))
    amota = sorted(v["amota"] for v in per_scene.values() if v["amota"] is not None)
    if amota:
        median = statistics.median(amota)
        lines.append(f"scene AMOTA: median {median:.3f}, min {amota[0]:.3f}, max {amota[-1]:.3f}")
    return "\n".join(lines)


def _bev_scene(nusc: Any, evaluator: Any, split: str, wanted: str | None) -> dict[str, Any]:
    """The scene record to draw: the one asked for, else the first of the split in the devkit's order."""
    from nuscenes.utils.splits import create_splits_scenes

    evaluated = {nusc.get("scene", token)["name"]: token for token in evaluator.tracks_gt}
    if wanted is not None:
        if wanted not in evaluated:
            raise EvalError(f"scene {wanted!r} is not among the evaluated scenes of split {split!r}")
        return dict(nusc.get("scene", evaluated[wanted]))
    name = next(n for n in create_splits_scenes()[split] if n in evaluated)
    return dict(nusc.get("scene", evaluated[name]))


def write_plots(args: argparse.Namespace, metrics: Mapping[str, Any], evaluator: Any) -> list[Path]:
    """Per-class AMOTA and the bird's-eye view of one scene (with that scene's own metrics)."""
    from nuscenes import NuScenes

    from syncl_ros.eval.plots import plot_bev, plot_class_amota

    amota_png = args.out / AMOTA_PNG
    plot_class_amota(metrics, amota_png)
    # TrackingEval does not keep its NuScenes object, so the drawing loads its own.
    nusc = NuScenes(version=args.version, dataroot=str(args.dataroot), verbose=args.verbose)
    scene = _bev_scene(nusc, evaluator, args.split, args.scene)
    bev_png = args.out / f"bev_{scene['name']}.png"
    plot_bev(
        nusc, load_results(args.results), scene["name"], bev_png, scene_metrics(evaluator, scene["token"])
    )
    return [amota_png, bev_png]


def _drop_empty_plot_dir(out: Path) -> None:
    # The devkit always creates out/plots for its PDF curves; without them it stays empty.
    with contextlib.suppress(OSError):
        (out / "plots").rmdir()


DETECTION_COLUMNS = (
    ("map", "mAP"),
    ("nds", "NDS"),
    ("mate", "mATE"),
    ("mase", "mASE"),
    ("maoe", "mAOE"),
    ("mave", "mAVE"),
)


def format_detection_table(metrics: Mapping[str, Any]) -> str:
    """The detection summary on one row, then AP per class ('-' where a class has no ground truth)."""
    header = "".join(f"{h:>8}" for _, h in DETECTION_COLUMNS)
    lines = [header, "".join(f"{_cell(metrics[k], '.3f'):>8}" for k, _ in DETECTION_COLUMNS), ""]
    lines += [f"{name:<12}{_cell(ap, '.3f'):>8}" for name, ap in metrics["per_class_ap"].items()]
    return "\n".join(lines)


def detection_main(args: argparse.Namespace) -> list[Path]:
    """Score detection results (``syncl track --detections``) with the devkit's detection metrics."""
    if args.per_scene or args.scene is not None:
        raise EvalError("--per-scene and --scene score tracks; detection results are scored as a whole")
    metrics = evaluate_detection(args.results, args.dataroot, args.version, args.split)
    args.out.mkdir(parents=True, exist_ok=True)
    write_metrics(metrics, args.out / "metrics.json")
    print(f"nuScenes detection metrics, split {args.split} ({args.version}), {args.results}")
    print(format_detection_table(metrics))
    return [args.out / "metrics.json"]


def main(args: argparse.Namespace) -> int:
    try:
        if is_detection_results(load_results(args.results)):
            written = detection_main(args)
            print("wrote " + ", ".join(str(p) for p in written))
            return 0
        # A misspelt --scene should fail before minutes of scoring, not after.
        if args.scene is not None and args.scene not in check_split(args.version, args.split):
            raise EvalError(f"scene {args.scene!r} is not in split {args.split!r}")
        metrics, evaluator = run_tracking_eval(
            args.results, args.dataroot, args.version, args.split, args.out, args.verbose, args.render_curves
        )
        _drop_empty_plot_dir(args.out)
        print(f"nuScenes tracking metrics, split {args.split} ({args.version}), {args.results}")
        print(format_table(metrics))
        if args.per_scene:
            metrics["per_scene"] = per_scene_metrics(evaluator, args.dataroot, args.version)
            write_metrics(metrics, args.out / "metrics.json")
            print(format_scene_table(metrics["per_scene"]))
        written = [args.out / "metrics.json"]
        if not args.no_plots:
            written += write_plots(args, metrics, evaluator)
    except (EvalError, OSError) as exc:
        print(f"syncl eval: error: {exc}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
