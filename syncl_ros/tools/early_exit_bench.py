"""`syncl bench early-exit`: what dynamic early exit (tracker.early_exit) saves, and what it costs.

With a dataset (DATAROOT): every key frame of the split is encoded once (onnxruntime) and then
decoded and tracked twice on the same features, by two frame pipelines with their own tracker
state: full depth (the switch off: the single decoder graph) and early exit (the switch on: the
per-layer graphs). Their order alternates from frame to frame, so a shared machine's load falls
on both alike. Prints each one's AMOTA (the official devkit), decoder milliseconds per frame
(median, p95, mean) with the ratios measured in the same run, and how many frames stopped after
each layer.

Without one (--synthetic): the decoder's cost when every frame stops after layer k, for each k,
against the single graph, on synthetic frames; for a model that is not trained (r50_704x256).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from syncl_ros.inference.backend import Backend
from syncl_ros.tracking.interface import TrackSlots

FULL, EXIT = "full depth", "early exit"


@dataclasses.dataclass
class Run:
    """One setting's pass over the split."""

    results: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)  # by sample token
    decode_ms: list[float] = dataclasses.field(default_factory=list)  # per frame after warm-up
    layers: Counter[int] = dataclasses.field(default_factory=Counter)  # exit layer -> frames
    forced: int = 0  # frames the rule ran at full depth whatever their outputs (every n-th, resets)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataroot", type=Path, nargs="?", help="nuScenes-format dataset (not with --synthetic)")
    p.add_argument("--version", default="v1.0-trainval", help="dataset version (default: v1.0-trainval)")
    p.add_argument("--split", default="val", help="split whose scenes are tracked (default: val)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped model)")
    p.add_argument(
        "--config", default=None, help="with --synthetic: a config with random weights (e.g. r50_704x256)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="tracker.KEY=VALUE",
        help="tracker settings of both runs, e.g. --set tracker.early_exit.max_move_m=0.3",
    )
    p.add_argument("--synthetic", action="store_true", help="the cost of each exit layer on synthetic frames")
    p.add_argument("--frames", type=int, default=20, help="--synthetic: timed frames (default: 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames first (default: 2)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument("--cache-dir", type=Path, default=None, help="exports (default: ~/.cache/syncl_ros)")
    p.add_argument("--out", type=Path, default=None, help="results, metrics and the table (JSON) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace, checkpoint: Path, description: str, cache_dir: Path) -> int:
    """The `early-exit` target of `syncl bench` (bench_cli resolves the checkpoint)."""
    if args.synthetic == (args.dataroot is not None):
        print("syncl bench early-exit: give either a DATAROOT or --synthetic", file=sys.stderr)
        return 2
    print(f"syncl bench early-exit: {description}", flush=True)
    try:
        if args.synthetic:
            report = bench_depths(checkpoint, args.frames, args.warmup, args.threads, cache_dir)
        else:
            report = bench_split(args, checkpoint, cache_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"syncl bench early-exit: {err}", file=sys.stderr)
        return 2
    print(report["table"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "early_exit.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


# -- statistics ------------------------------------------------------------------------------------


def stats(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


def _ms(s: dict[str, float]) -> str:
    return f"{s['median']:.1f} / {s['p95']:.1f} / {s['mean']:.1f}"


# -- a dataset split: full depth against early exit ---------------------------------------------------


def bench_split(args: argparse.Namespace, checkpoint: Path, cache_dir: Path) -> dict[str, Any]:
    """Track the split with both settings on the same encoded frames; their AMOTA, decoder cost and
    exit layers."""
    from syncl_ros.data.frames import NuScenesFrames
    from syncl_ros.experiment import with_overrides, with_tracker_overrides
    from syncl_ros.inference.factory import create_backend
    from syncl_ros.pipeline.model_setup import experiment_of

    base = with_tracker_overrides(experiment_of(checkpoint), args.overrides, "benchmark time")
    experiments = {
        FULL: with_overrides(base, ["tracker.early_exit.enabled=false"]),
        EXIT: with_overrides(base, ["tracker.early_exit.enabled=true"]),
    }
    backend = create_backend(
        "onnxruntime", checkpoint, "cpu", cache_dir=cache_dir, threads=args.threads, layers=True
    )
    frames = NuScenesFrames(args.dataroot, args.version, split=args.split)
    runs = _track_both(frames, backend, experiments, args.warmup, not args.no_progress)
    out = args.out or cache_dir / "bench" / "early_exit"
    rows = {}
    for name, run in runs.items():
        amota = _score(run.results, args, out / name.replace(" ", "_"))
        rows[name] = {
            "amota": amota,
            "decode_ms": stats(run.decode_ms),
            "layers": dict(sorted(run.layers.items())),
            "forced": run.forced,
        }
    settings = dataclasses.asdict(experiments[EXIT].tracker.early_exit)
    return {"settings": settings, "rows": rows, "table": split_table(rows)}


def _track_both(
    frames: Any, backend: Backend, experiments: dict[str, Any], warmup: int, progress: bool
) -> dict[str, Run]:
    from tqdm import tqdm

    from syncl_ros.classes import TRACKING_CLASSES
    from syncl_ros.pipeline.dataset_inputs import dataset_frame_inputs
    from syncl_ros.pipeline.frame_pipeline import FramePipeline
    from syncl_ros.pipeline.offline import camera_mask, result_entry
    from syncl_ros.rig import CAMERA_CHANNELS
    from syncl_ros.tracking.early_exit import early_exit_for
    from syncl_ros.tracking.factory import make_tracker

    cfg = next(iter(experiments.values())).model
    cameras = camera_mask(())
    runs = {name: Run() for name in experiments}
    bar = tqdm(total=len(frames), desc="early exit", disable=not progress)
    count = 0
    for scene in frames.scene_names:
        pipelines = {
            name: FramePipeline(
                backend,
                make_tracker(e.tracker, cfg, seed=0),
                cfg.input,
                CAMERA_CHANNELS,
                early_exit=early_exit_for(e.tracker, cfg.num_layers),
            )
            for name, e in experiments.items()
        }
        for i in frames.scene_slices[scene]:
            frame = frames[i]
            inputs = dataset_frame_inputs(frame, cfg, cameras)
            assert inputs.images is not None  # read with the frame
            features = backend.encode(inputs.images)
            names = list(pipelines) if count % 2 == 0 else list(pipelines)[::-1]
            for name in names:
                result = pipelines[name].track(inputs, features)
                run = runs[name]
                run.results[frame.token] = [
                    result_entry(t, frame) for t in result.tracks if t.class_name in TRACKING_CLASSES
                ]
                if count >= warmup:
                    run.decode_ms.append(result.timings_ms["decode"])
                run.layers[result.decoder_layers] += 1
                rule = pipelines[name].early_exit
                run.forced += int(rule is not None and rule.full_depth)
            count += 1
            bar.update(1)
    bar.close()
    return runs


def _score(results: dict[str, Any], args: argparse.Namespace, out: Path) -> float:
    from syncl_ros.atomic import write_json_atomic
    from syncl_ros.eval.tracking import evaluate_tracking
    from syncl_ros.pipeline.results import RESULTS_META

    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    write_json_atomic(path, {"meta": RESULTS_META, "results": results})
    metrics = evaluate_tracking(path, args.dataroot, args.version, args.split, out / "eval")
    return float(metrics["overall"]["amota"])


def split_table(rows: dict[str, dict[str, Any]]) -> str:
    full = rows[FULL]["decode_ms"]
    head = "| run | AMOTA | decoder ms median / p95 / mean | vs full (median, mean) | exit layer: frames |"
    lines = [head + " full depth by schedule |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ms = row["decode_ms"]
        ratio = f"{ms['median'] / full['median']:.2f}, {ms['mean'] / full['mean']:.2f}"
        layers = ", ".join(f"{k}: {n}" for k, n in sorted(row["layers"].items()))
        lines.append(f"| {name} | {row['amota']:.3f} | {_ms(ms)} | {ratio} | {layers} | {row['forced']} |")
    return "\n".join(lines)


# -- synthetic frames: the cost of each exit layer ----------------------------------------------------


def bench_depths(
    checkpoint: Path, frames: int, warmup: int, threads: int | None, cache_dir: Path
) -> dict[str, Any]:
    """Decoder milliseconds per frame with the single graph and when stopping after each layer,
    every case on the same frames in rotating order."""
    from syncl_ros.inference.factory import create_backend
    from syncl_ros.pipeline.bench import synthetic_sequence
    from syncl_ros.pipeline.model_setup import experiment_of

    cfg = experiment_of(checkpoint).model
    backend = create_backend(
        "onnxruntime", checkpoint, "cpu", cache_dir=cache_dir, threads=threads, layers=True
    )
    slots = TrackSlots.empty(cfg.num_slots, cfg.embed_dim)
    cases = ["single graph"] + [f"stop after layer {k}" for k in range(1, cfg.num_layers + 1)]
    samples: dict[str, list[float]] = {c: [] for c in cases}
    for i, frame in enumerate(synthetic_sequence(cfg, warmup + frames)):
        features = backend.encode(frame.images)
        for j in range(len(cases)):
            case = cases[(i + j) % len(cases)]
            start = time.perf_counter()
            _decode(backend, features, frame.img2lidar, slots, cases.index(case))
            if i >= warmup:
                samples[case].append((time.perf_counter() - start) * 1e3)
    rows = {c: stats(ms) for c, ms in samples.items()}
    return {"layers": cfg.num_layers, "rows": rows, "table": depth_table(rows)}


def _decode(
    backend: Backend, features: Any, img2lidar: NDArray[np.float32], slots: TrackSlots, depth: int
) -> None:
    """depth 0: the single graph; k: the per-layer graphs up to layer k."""
    if depth == 0:
        backend.decode(features, img2lidar, slots)
        return
    for layer, _ in enumerate(backend.decode_layers(features, img2lidar, slots), start=1):
        if layer == depth:
            break


def depth_table(rows: dict[str, dict[str, float]]) -> str:
    single = rows["single graph"]
    lines = ["| decoder | ms median / p95 / mean | vs single graph (median) |", "|---|---|---|"]
    for name, ms in rows.items():
        lines.append(f"| {name} | {_ms(ms)} | {ms['median'] / single['median']:.2f} |")
    return "\n".join(lines)
