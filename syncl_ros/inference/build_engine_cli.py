"""`syncl build-engine`: build (or find cached) TensorRT engines for this GPU ahead of time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncl_ros.inference.backend import BackendUnavailable, default_cache_dir
from syncl_ros.inference.default_model import default_model_path
from syncl_ros.inference.engine_cache import EngineCache


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=Path, default=None, help="checkpoint or export folder (default: the shipped model)"
    )
    p.add_argument(
        "--precision", choices=("fp16", "fp32"), default="fp16", help="engine precision (default: fp16)"
    )
    p.add_argument("--device", default="cuda", help="CUDA device the engines are for (default: cuda)")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: ~/.cache/syncl_ros)")
    p.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace limit (default: 2048)")
    p.add_argument("--rebuild", action="store_true", help="build even when a valid cached engine exists")
    p.add_argument(
        "--layers",
        action="store_true",
        help="also the per-layer decoder engines that early exit (tracker.early_exit) runs",
    )
    p.add_argument(
        "--list", action="store_true", help="list the cached engines and exit (no TensorRT needed)"
    )


def main(args: argparse.Namespace) -> int:
    from syncl_ros.inference.tensorrt_backend import build_engines

    cache_dir = args.cache_dir or default_cache_dir()
    if args.list:
        return _list(EngineCache(cache_dir / "engines", lambda onnx, key: b""))
    try:
        model = args.model or default_model_path()
        results = build_engines(
            model,
            args.precision,
            cache_dir,
            args.device,
            rebuild=args.rebuild,
            workspace_mb=args.workspace_mb,
            layers=args.layers,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl build-engine: {err}", file=sys.stderr)
        return 2
    except BackendUnavailable as err:
        print(f"syncl build-engine: {err}", file=sys.stderr)
        return 1
    for graph, result in results.items():
        state = f"built ({result.reason})" if result.built else "cached"
        print(f"{graph}: {state} -> {result.path}")
    return 0


def _list(cache: EngineCache) -> int:
    entries = cache.entries()
    if not entries:
        print(f"no cached engines in {cache.root}")
    for meta in entries:
        key = meta.get("key", {})
        gpu = f"{key.get('gpu_name')} (sm {key.get('compute_capability')})"
        print(
            f"{key.get('graph')}: {key.get('precision')} {gpu} TensorRT {key.get('tensorrt_version')} "
            f"onnx {str(key.get('onnx_sha256'))[:12]} {meta.get('engine_bytes', 0) / 2**20:.1f} MiB"
        )
    return 0
