"""Learning curve of a training run: score its weight snapshots (step_N.pt) on
a held-out split with the official tracking metrics (and detection mAP of the
same boxes), and plot both against training compute.

    python -m syncl_ros.tools.curve RUN --dataroot data/synth_val --split val [--plot curve.png]

Scores are appended to RUN/curve_<dataroot name>_<tracker>.jsonl as they are computed, so an
interrupted run resumes where it stopped and new snapshots are scored on
the next call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncl_ros.atomic import atomic_open
from syncl_ros.eval.detection import evaluate_detection
from syncl_ros.eval.tracking import evaluate_tracking
from syncl_ros.experiment.checkpoint import read_checkpoint
from syncl_ros.pipeline.offline import track_split

KEYS = ("amota", "amotp", "recall", "mota", "ids")


def curve_name(dataroot: Path, tracker: str = "queries") -> str:
    """One curve file per scoring set and tracker, e.g. curve_synth_dev_queries.jsonl."""
    return f"curve_{dataroot.name}_{tracker}.jsonl"


def read_curve(run: Path, name: str) -> list[dict[str, Any]]:
    path = run / name
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def total_seconds(meta: dict[str, Any]) -> float:
    """Training compute of a checkpoint including the runs it was initialized from (`--init`)."""
    total, link = float(meta.get("train_seconds") or 0.0), meta.get("init_from")
    while link:
        total += float(link.get("train_seconds") or 0.0)
        link = link.get("init_from")
    return total


def _hours(record: dict[str, Any]) -> float:
    return float(record.get("total_seconds", record["train_seconds"])) / 3600


def score_snapshot(
    path: Path,
    dataroot: Path,
    version: str,
    split: str,
    tracker: str | None = "queries",
    overrides: Sequence[str] = (),
    detection: bool = True,
    feature_cache: Path | None = None,
) -> dict[str, Any]:
    """Track the split with one checkpoint (tracker.* `overrides` applied) and return its metrics.

    ``tracker`` names the method ("queries" or "greedy"); None: the checkpoint's own setting.
    ``detection=False`` skips the detection mAP (a second devkit evaluation). ``feature_cache``
    reads the encoder's output from a cache folder (float16; `track_frames`).
    """
    meta = read_checkpoint(path)["metadata"]
    record = {
        "snapshot": path.name,
        "step": meta["step"],
        "train_seconds": meta["train_seconds"],
        "total_seconds": total_seconds(meta),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        stats = track_split(
            dataroot,
            version,
            split,
            path,
            results,
            progress=False,
            overrides=overrides,
            tracker=tracker,
            feature_cache=feature_cache,
        )
        record["boxes"] = stats["boxes"]
        if stats["boxes"] == 0:
            # Nothing above the thresholds yet (an early snapshot): no recall, so AMOTA and MOTA are 0.
            return {**record, "amota": 0.0, "amotp": None, "recall": 0.0, "mota": 0.0, "ids": 0, "map": 0.0}
        metrics = evaluate_tracking(results, dataroot, version, split, Path(tmp) / "eval")
        det = evaluate_detection(results, dataroot, version, split) if detection else None
    record.update({k: metrics["overall"][k] for k in KEYS})
    record["per_class_amota"] = {c: v["amota"] for c, v in metrics["per_class"].items()}
    if det is not None:
        record.update(map=det["map"], mate=det["mate"], per_class_ap=det["per_class_ap"])
    return record


def update_curve(
    run: Path,
    dataroot: Path,
    version: str,
    split: str,
    tracker: str = "queries",
    feature_cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Score every snapshot of the run not yet in its curve; returns the whole curve.

    ``tracker="greedy"`` scores the same snapshots as tracking by detection (a curve file of its own).
    """
    name = curve_name(dataroot, tracker)
    done = {r["snapshot"] for r in read_curve(run, name)}
    for path in sorted(run.glob("step_*.pt")):
        if path.name in done:
            continue
        record = score_snapshot(path, dataroot, version, split, tracker, feature_cache=feature_cache)
        with (run / name).open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{run.name}/{path.name} ({tracker}): AMOTA {record['amota']:.3f}", flush=True)
    return sorted(read_curve(run, name), key=lambda r: r["step"])


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table of curve records, one per labelled row (compute includes `--init` runs)."""
    lines = [
        "| variant | step | compute h | AMOTA | AMOTP | recall | MOTA | IDS | mAP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['step']} | {_hours(r):.2f} | {_fmt(r['amota'])} | {_fmt(r['amotp'])} "
            f"| {_fmt(r['recall'])} | {_fmt(r['mota'])} | {r['ids']} | {_fmt(r.get('map'))} |"
        )
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[dict[str, Any]]], out: Path, scored_on: str = "val") -> None:
    """AMOTA and detection mAP vs training compute (hours, `--init` runs included), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), dpi=120)
    for label, curve in curves.items():
        hours = [_hours(r) for r in curve]
        for ax, key in zip(axes, ("amota", "map"), strict=True):
            ax.plot(hours, [r.get(key) or 0.0 for r in curve], marker="o", label=label)
    names = (f"AMOTA ({scored_on})", f"detection mAP ({scored_on}, 7 classes)")
    for ax, name in zip(axes, names, strict=True):
        ax.set_xlabel("training compute (hours)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(out) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "runs", nargs="*", type=Path, help="run folders (`syncl train --out`) for the query tracker"
    )
    p.add_argument("--dataroot", type=Path, required=True)
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="val")
    p.add_argument("--plot", type=Path, default=None, help="write the AMOTA-vs-time plot here")
    p.add_argument(
        "--greedy",
        action="append",
        type=Path,
        default=[],
        metavar="RUN",
        help="also score this run's snapshots as tracking by detection (repeatable)",
    )
    p.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="read encoder features from caches under DIR (built when missing); for runs whose "
        "encoder is frozen, it scores the decoder only",
    )
    p.add_argument("--table-step", type=int, default=None, help="print a markdown table at this step")
    p.add_argument(
        "--best", action="store_true", help="print the run whose last snapshot scores the highest AMOTA"
    )
    args = p.parse_args(argv)
    if not args.runs and not args.greedy:
        p.error("give run folders, --greedy RUN, or both")
    where = (args.dataroot, args.version, args.split)
    curves = {run.name: update_curve(run, *where, feature_cache=args.feature_cache) for run in args.runs}
    for run in args.greedy:
        curves[f"{run.name} greedy"] = update_curve(run, *where, "greedy", args.feature_cache)
    if args.plot:
        plot_curves(curves, args.plot, args.dataroot.name)
    if args.table_step is not None:
        rows = {k: r for k, c in curves.items() for r in c if r["step"] == args.table_step}
        print(table(rows))
    if args.best:
        print(best_run({run: curves[run.name] for run in args.runs}))
    return 0


def best_run(curves: dict[Path, list[dict[str, Any]]]) -> Path:
    """The run whose last scored snapshot has the highest AMOTA (runs without one are skipped)."""
    scored = {run: curve[-1]["amota"] for run, curve in curves.items() if curve}
    if not scored:
        raise ValueError("no run has a scored snapshot")
    return max(scored, key=lambda run: scored[run])


if __name__ == "__main__":
    raise SystemExit(main())
