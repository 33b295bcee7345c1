"""The command line shared by the tools that read results files of one split (range_errors,
track_life, by_camera): the files, the dataset, and loading them with a label each."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncl_ros.eval.tracking import load_results, split_sample_tokens


def results_label(path: Path, paths: Sequence[Path]) -> str:
    """A results file's name in the output: its stem, or its path where stems repeat."""
    stems = [p.stem for p in paths]
    return path.stem if stems.count(path.stem) == 1 else str(path)


def add_results_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The results files (help: `what`), --dataroot, --version and --split."""
    p.add_argument("results", type=Path, nargs="+", help=what)
    p.add_argument("--dataroot", type=Path, required=True)
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="val")


def load_split_results(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The split's sample tokens and each results file's boxes by its label; EvalError if unusable."""
    samples = split_sample_tokens(args.dataroot, args.version, args.split)
    loaded = {results_label(path, args.results): load_results(path)["results"] for path in args.results}
    return samples, loaded
