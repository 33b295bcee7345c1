"""`syncl bench`: `backends`, per-stage latency and memory of every backend available here, with
the host cost of both trackers (queries, greedy) on the same decoder outputs; `early-exit`, full
decoder depth against early exit (syncl_ros.tools.early_exit_bench); `node` and `soak`,
the ROS node under a sustained or a faulty replay (syncl_ros.ros.bench_node, syncl_ros.ros.soak)."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from syncl_ros.inference.backend import default_cache_dir


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    configure_backends_parser(
        sub.add_parser(
            "backends", help="latency of encode / decode / host trackers (queries, greedy) per backend"
        )
    )
    from syncl_ros.tools import early_exit_bench

    early_exit_bench.configure_parser(
        sub.add_parser("early-exit", help="decoder cost, exit layers, AMOTA: full depth against early exit")
    )
    from syncl_ros.ros import bench_node  # no rclpy import until it runs

    bench_node.configure_parser(sub.add_parser("node", help="the ROS node under a sustained 12 Hz replay"))
    from syncl_ros.ros import soak

    soak.configure_parser(
        sub.add_parser("soak", help="the ROS node over a long looped replay with faults injected at random")
    )


def configure_backends_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument(
        "--config",
        default=None,
        help="time a config with random weights instead (tiny, r50_704x256 or a YAML path); "
        "the default when no model is given and none is shipped: tiny",
    )
    p.add_argument("--frames", type=int, default=30, help="timed frames per backend (default: 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (default: 3)")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs per backend, alternating between backends, each with --frames frames (default: 3)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CPU cases, plus GPU cases when CUDA is present (default: auto)",
    )
    p.add_argument("--only", default="", help="comma-separated backends to run (torch,onnxruntime,tensorrt)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and onnxruntime (default: all usable cores)",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="exports and engines (default: ~/.cache/syncl_ros)"
    )
    p.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown here")
    p.add_argument("--json", type=Path, default=None, help="also write all numbers as JSON here")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every case in this process (faster start; peak RSS is then cumulative)",
    )


def main(args: argparse.Namespace) -> int:
    if args.target == "backends":
        return main_backends(args)
    if args.target == "early-exit":
        return main_early_exit(args)
    if args.target == "node":
        from syncl_ros.ros import bench_node

        return bench_node.main(args)
    if args.target == "soak":
        from syncl_ros.ros import soak

        return soak.main(args)
    print(f"syncl bench: unknown target {args.target!r}", file=sys.stderr)
    return 2


def main_early_exit(args: argparse.Namespace) -> int:
    from syncl_ros.tools import early_exit_bench

    cache_dir = args.cache_dir or default_cache_dir()
    try:
        checkpoint, description = resolve_checkpoint(args.model, args.config, cache_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl bench: {err}", file=sys.stderr)
        return 2
    return early_exit_bench.main(args, checkpoint, description, cache_dir)


def resolve_checkpoint(model: Path | None, config: str | None, cache_dir: Path) -> tuple[Path, str]:
    """The checkpoint to time and a description of it; a config gets seeded random weights."""
    from syncl_ros.inference.default_model import default_model_path

    if model is not None:
        return model, f"checkpoint {model}"
    if config is None:
        try:
            return default_model_path(), "the shipped model"
        except FileNotFoundError:
            config = "tiny"
    return random_checkpoint(config, cache_dir)


def random_checkpoint(config: str, cache_dir: Path) -> tuple[Path, str]:
    import torch

    from syncl_ros.experiment import load_experiment
    from syncl_ros.experiment.checkpoint import save_checkpoint
    from syncl_ros.model.network import TrackerNet

    exp = load_experiment(config)
    path = cache_dir / "bench" / f"{exp.name}-random-seed0.pt"
    if not path.is_file():
        torch.manual_seed(0)
        net = TrackerNet(exp.model).eval()
        save_checkpoint(path, net, exp, {"weights": "random, seed 0: for timing only"})
    return path, f"config {exp.name} with random weights (timing only)"


def _context(args: argparse.Namespace, description: str, threads: int, exp: Any) -> dict[str, Any]:
    import onnxruntime
    import torch

    cfg = exp.model
    return {
        "model": description,
        "config": exp.name,
        "input": f"6 x {cfg.input.height}x{cfg.input.width}",
        "slots": cfg.num_slots,
        "frames": f"{args.frames} x {args.rounds} rounds",
        "warmup": args.warmup,
        "threads": threads,
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main_backends(args: argparse.Namespace) -> int:
    from syncl_ros.experiment import Experiment
    from syncl_ros.experiment.checkpoint import read_checkpoint
    from syncl_ros.inference.export import ensure_export
    from syncl_ros.inference.onnxruntime_backend import usable_cores
    from syncl_ros.pipeline.bench import (
        busy_tracker_config,
        default_cases,
        markdown_table,
        rows_to_json,
        run_bench,
    )

    cache_dir = args.cache_dir or default_cache_dir()
    try:
        checkpoint, description = resolve_checkpoint(args.model, args.config, cache_dir)
        exp = Experiment.from_dict(read_checkpoint(checkpoint)["experiment"], where=str(checkpoint))
        cases = default_cases(args.device)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            cases = [c for c in cases if c.backend in wanted]
        export_dir = (
            ensure_export(checkpoint, cache_dir) if any(c.backend != "torch" for c in cases) else cache_dir
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl bench: {err}", file=sys.stderr)
        return 2
    threads = args.threads or usable_cores()
    context = _context(args, description, threads, exp)
    print("syncl bench backends: " + ", ".join(f"{k}={v}" for k, v in context.items()), flush=True)
    rows = run_bench(
        cases,
        checkpoint,
        export_dir,
        exp.model,
        busy_tracker_config(exp.tracker),
        args.frames,
        args.warmup,
        threads,
        cache_dir,
        isolate=not args.in_process,
        rounds=args.rounds,
    )
    table = markdown_table(rows)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(rows_to_json(rows, context) + "\n")
    return 0 if all(r.error is None for r in rows if r.case.device == "cpu") else 1
