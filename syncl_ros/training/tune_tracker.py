"""Tune the runtime tracker's thresholds of one checkpoint on a development split.

    python -m syncl_ros.training.tune_tracker CKPT --dataroot data/synth_dev --split val \
        --birth 0.2 0.25 0.3 0.35 0.4

Each birth threshold is tried with the update threshold equal to it (as PF-Track sets both)
and the output threshold at min(0.2, birth); the split is tracked and scored with the
official metrics, and the setting with the best AMOTA is printed as `--set` arguments for
`syncl release`. Tune on scenes that are neither trained on nor used for the reported
figures, or the reported figures are tuned on their own test set.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncl_ros.training.curve import score_snapshot


def settings(birth: float) -> list[str]:
    return [
        f"tracker.birth_score={birth}",
        f"tracker.update_score={birth}",
        f"tracker.output_score={min(0.2, birth)}",
    ]


def sweep(
    checkpoint: Path, dataroot: Path, version: str, split: str, births: Sequence[float]
) -> list[dict[str, Any]]:
    rows = []
    for birth in births:
        record = score_snapshot(checkpoint, dataroot, version, split, overrides=settings(birth))
        rows.append({"birth": birth, **record})
        amota, recall = record["amota"], record["recall"]
        print(f"birth/update {birth:.2f}: AMOTA {amota:.3f} recall {recall:.3f}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--dataroot", type=Path, required=True, help="development split (not the test split)")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="val")
    p.add_argument("--birth", type=float, nargs="+", default=[0.2, 0.25, 0.3, 0.35, 0.4])
    args = p.parse_args(argv)
    rows = sweep(args.checkpoint, args.dataroot, args.version, args.split, args.birth)
    best = max(rows, key=lambda r: r["amota"])
    print("best: " + " ".join(f"--set {s}" for s in settings(best["birth"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
