"""Side-by-side table of tracking results: one row per evaluated run, and per variant the mean
over its seeds with the range, from the `metrics.json` files that `syncl eval` writes.

    python -m syncl_ros.tools.side_by_side \
        "without SynCL=runs/eval/plain_s0,runs/eval/plain_s1" \
        "with SynCL=runs/eval/syncl_s0,runs/eval/syncl_s1" \
        "greedy=runs/eval/greedy" [--markdown table.md]

Each argument is LABEL=DIR[,DIR...]; a DIR is an evaluation folder (or its metrics.json). A
variant of one run gets one row; a variant of several gets a row per run and a bold mean row,
with the spread (lowest–highest) of AMOTA, so the reader sees how much a seed moves it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from syncl_ros.atomic import atomic_open

# (metrics.json key, column title, decimals; 0 for counts)
COLUMNS = (
    ("amota", "AMOTA", 3),
    ("amotp", "AMOTP", 3),
    ("recall", "recall", 3),
    ("mota", "MOTA", 3),
    ("ids", "IDS", 0),
    ("tp", "TP", 0),
    ("fp", "FP", 0),
)


@dataclass(frozen=True)
class Variant:
    label: str
    runs: tuple[Path, ...]


def parse_variant(text: str) -> Variant:
    """'LABEL=DIR[,DIR...]' -> Variant; ValueError on a missing label or folder list."""
    label, sep, dirs = text.partition("=")
    runs = tuple(Path(d) for d in dirs.split(",") if d.strip())
    if not sep or not label.strip() or not runs:
        raise ValueError(f"expected LABEL=DIR[,DIR...], got {text!r}")
    return Variant(label.strip(), runs)


def read_overall(run: Path) -> dict[str, float]:
    """The overall metrics of one `syncl eval` folder (or metrics.json path)."""
    path = run / "metrics.json" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in {run} (run `syncl eval ... --out {run}`)")
    overall = json.loads(path.read_text())["overall"]
    missing = [key for key, _, _ in COLUMNS if key not in overall]
    if missing:
        raise ValueError(f"{path}: overall metrics lack {missing}")
    return {key: float(overall[key]) for key, _, _ in COLUMNS}


def _name(run: Path) -> str:
    """A run's name in the table: its evaluation folder's."""
    return run.parent.name if run.suffix == ".json" else run.name


def _cells(values: dict[str, float]) -> list[str]:
    return [f"{values[key]:.{digits}f}" if digits else f"{values[key]:.0f}" for key, _, digits in COLUMNS]


def _row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def variant_rows(variant: Variant) -> list[str]:
    """Markdown rows of one variant: each run, then (several runs) the mean with AMOTA's range."""
    results = [read_overall(run) for run in variant.runs]
    if len(results) == 1:
        return [_row(variant.label, _cells(results[0]))]
    pairs = zip(variant.runs, results, strict=True)
    rows = [_row(f"{variant.label}, {_name(run)}", _cells(r)) for run, r in pairs]
    mean = {key: sum(r[key] for r in results) / len(results) for key, _, _ in COLUMNS}
    cells = _cells(mean)
    amota = [r["amota"] for r in results]
    cells[0] = f"{cells[0]} ({min(amota):.3f}–{max(amota):.3f})"
    rows.append(_row(f"**{variant.label}, mean (range)**", [f"**{c}**" for c in cells[:1]] + cells[1:]))
    return rows


def table(variants: Sequence[Variant]) -> str:
    head = _row("run", [title for _, title, _ in COLUMNS])
    rule = "|---|" + "---:|" * len(COLUMNS)
    body = [row for variant in variants for row in variant_rows(variant)]
    return "\n".join([head, rule, *body]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    doc = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m syncl_ros.tools.side_by_side", description=doc)
    p.add_argument("variants", nargs="+", metavar="LABEL=DIR[,DIR...]")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    try:
        text = table([parse_variant(v) for v in args.variants])
    except (ValueError, FileNotFoundError) as err:
        print(f"side_by_side: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.markdown is not None:
        with atomic_open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
