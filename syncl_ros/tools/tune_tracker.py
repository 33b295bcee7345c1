"""Tune the tracker settings of one checkpoint on a development split.

    python -m syncl_ros.tools.tune_tracker CKPT --dataroot data/synth_dev --split val \
        --birth 0.2 0.25 0.3 0.35 0.4
    python -m syncl_ros.tools.tune_tracker CKPT --dataroot data/synth_dev --split val \
        --grid tracker.method=greedy --grid tracker.greedy.score=0.05,0.1 --grid tracker.greedy.max_age=2,3,5

``--birth``: each birth threshold of the query tracker is tried with the update threshold equal
to it (as PF-Track sets both) and the output threshold at min(0.2, birth). ``--grid``: every
combination of the listed values. Each setting is tracked and scored with the official
metrics, and the one with the best AMOTA is printed as `--set` arguments for `syncl release`.
Tune on scenes that are neither trained on nor used for the reported figures, or the reported
figures are tuned on their own test set.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncl_ros.tools.curve import score_snapshot


def settings(birth: float) -> list[str]:
    return [
        f"tracker.birth_score={birth}",
        f"tracker.update_score={birth}",
        f"tracker.output_score={min(0.2, birth)}",
    ]


def grid(items: Sequence[str]) -> list[list[str]]:
    """["tracker.a=1,2", "tracker.b=3"] -> every combination, as lists of overrides."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.startswith("tracker.") or not values:
            raise ValueError(f"--grid expects tracker.KEY=V1,V2,..., got {item!r}")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)]


def sweep(
    checkpoint: Path,
    dataroot: Path,
    version: str,
    split: str,
    candidates: Sequence[Sequence[str]],
    feature_cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Score each candidate list of overrides; rows carry their "settings"."""
    rows = []
    for overrides in candidates:
        record = score_snapshot(
            checkpoint,
            dataroot,
            version,
            split,
            tracker=None,
            overrides=overrides,
            detection=False,
            feature_cache=feature_cache,
        )
        rows.append({"settings": list(overrides), **record})
        amota, recall = record["amota"], record["recall"]
        print(f"{' '.join(overrides)}: AMOTA {amota:.3f} recall {recall:.3f}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--dataroot", type=Path, required=True, help="development split (not the test split)")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="val")
    p.add_argument("--birth", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35, 0.4])
    p.add_argument("--grid", action="append", default=[], metavar="tracker.KEY=V1,V2", help="repeatable")
    p.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="encoder features from caches under DIR",
    )
    args = p.parse_args(argv)
    try:
        candidates = grid(args.grid) if args.grid else [settings(b) for b in args.birth]
    except ValueError as err:
        p.error(str(err))
    rows = sweep(args.checkpoint, args.dataroot, args.version, args.split, candidates, args.feature_cache)
    best = max(rows, key=lambda r: r["amota"])
    print("best: " + " ".join(f"--set {s}" for s in best["settings"]))
    print(f"best_amota: {best['amota']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
