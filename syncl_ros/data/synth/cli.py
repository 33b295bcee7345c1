"""`syncl synth OUT`: write a synthetic six-camera dataset in nuScenes format."""

from __future__ import annotations

import argparse
import sys
import time

from syncl_ros.data.synth.writer import DEFAULT_WORKERS, write_dataset


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="dataset root (tables go to OUT/v1.0-trainval)")
    p.add_argument("--scenes", type=int, default=1, help="number of scenes (default 1)")
    p.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    p.add_argument(
        "--split",
        choices=("train", "val"),
        default="train",
        help="scenes take the official names of this split, so the devkit assigns them to it",
    )
    p.add_argument("--duration", type=float, default=20.0, help="scene length in seconds (default 20)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="render processes (default: up to 4)")
    p.add_argument(
        "--no-sweeps",
        action="store_true",
        help="render only the cameras' key frames (~6x faster; for training and `syncl track`, not bags)",
    )
    p.add_argument(
        "--rig", default="rig_nuscenes", help="rig config name or YAML path (default rig_nuscenes)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.scenes < 1 or args.workers < 1:
        print("syncl synth: --duration, --scenes and --workers must be positive", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        tables = write_dataset(
            args.out,
            args.scenes,
            args.seed,
            args.split,
            args.duration,
            args.workers,
            args.rig,
            sweeps=not args.no_sweeps,
            progress=not args.no_progress,
        )
    except ValueError as err:
        print(f"syncl synth: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"wrote {args.scenes} {args.split} scene(s) to {tables.parent} in {elapsed:.1f} s")
    return 0
