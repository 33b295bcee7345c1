"""`syncl train`: train the tracker with the SynCL strategy.

syncl train --config tiny --dataroot data/synth_train --version v1.0-trainval --out runs/tiny
torchrun --nproc_per_node 8 -m syncl_ros.cli train --config r50_704x256 ...   (several GPUs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.config import ConfigError
from syncl_ros.data.tables import require_tables
from syncl_ros.experiment import load_experiment


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default="tiny", help="experiment name in config/ or a YAML path (default: tiny)"
    )
    p.add_argument("--dataroot", type=Path, required=True, help="nuScenes-format dataset folder")
    p.add_argument("--version", default="v1.0-trainval", help="dataset version (default: v1.0-trainval)")
    p.add_argument("--split", default="train", help="split to train on (default: train)")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoints and metrics.jsonl")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: config)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this checkpoint's weights with a fresh optimizer and schedule "
        "(ignored when --resume finds OUT/last.pt)",
    )
    p.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="cache of the frozen encoder's features (train.freeze_encoder) "
        "(default: features/ under $SYNCL_CACHE_DIR, else $XDG_CACHE_HOME/syncl_ros or ~/.cache/syncl_ros)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.syncl.contrastive=false",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from syncl_ros.training.trainer import RunSpec, Trainer

    try:
        exp = load_experiment(args.config, args.overrides)
        require_tables(args.dataroot, args.version)
    except (ConfigError, FileNotFoundError) as err:
        print(f"syncl train: {err}", file=sys.stderr)
        return 2
    spec = RunSpec(
        args.dataroot,
        args.version,
        args.split,
        args.out,
        args.max_steps,
        args.resume,
        args.device,
        not args.no_progress,
        args.init,
        args.feature_cache,
    )
    path = Trainer(exp, spec).run()
    print(f"syncl train: checkpoint {path}")
    return 0
