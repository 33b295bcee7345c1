"""`syncl release CKPT OUT`: strip a training checkpoint down to the weights a deployment needs.

syncl release runs/tiny/last.pt syncl_ros/weights/tiny_synth.pt --note data="synth seed 0, 80 scenes"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.experiment.checkpoint import release_checkpoint


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="checkpoint written by `syncl train`")
    p.add_argument("out", type=Path, help="released weights to write")
    p.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add a metadata entry (e.g. a data description); repeatable",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="store a tracker setting (tracker.KEY=VALUE, e.g. thresholds tuned on a dev split) or a "
        "graph switch (model.track_seed_memory) with the weights; repeatable",
    )


def main(args: argparse.Namespace) -> int:
    notes = {}
    for item in args.note:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"syncl release: --note expects KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        notes[key] = value
    try:
        out = release_checkpoint(args.checkpoint, args.out, notes, args.overrides)
    except (FileNotFoundError, ValueError) as err:  # ConfigError is a ValueError
        print(f"syncl release: {err}", file=sys.stderr)
        return 2
    size_mb = out.stat().st_size / 2**20
    print(f"syncl release: {out} ({size_mb:.1f} MiB)")
    return 0
