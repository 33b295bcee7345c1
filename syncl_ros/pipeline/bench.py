"""Backend speed and memory: per-stage latency over a synthetic six-camera sequence.

Each configuration (backend, device, precision, options) runs in its own
spawned process by default, so its peak resident memory and its thread pools
are its own; with several rounds the configurations take turns (ABBA order),
so a shared machine's changing load is spread over all of them. A frame
is timed in three stages of the frame pipeline (the node's): encode (images ->
features, device synchronized), decode (features + slots -> host DecoderOutputs,
boxes decoded) and host tracker (prepare + update), the last for both trackers on the same decoder
outputs: the query tracker, whose slots the decoder ran with and whose time
the frame total counts, and the greedy tracker, which reads only the detection
rows and is timed beside it. Medians and 90th percentiles are taken over the
frames after warm-up; speed-ups are against torch eager FP32 on the same
device, measured in the same run.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from syncl_ros.geometry import Transform
from syncl_ros.inference.backend import BackendUnavailable, cuda_available
from syncl_ros.inference.factory import create_backend
from syncl_ros.inference.onnxruntime_backend import usable_cores
from syncl_ros.model.config import ModelConfig
from syncl_ros.pipeline.frame_inputs import FrameInputs
from syncl_ros.pipeline.frame_pipeline import FramePipeline
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.factory import make_tracker
from syncl_ros.tracking.interface import DecoderOutputs, Tracker

FRAME_PERIOD_NS = 500_000_000  # 2 Hz key frames, as nuScenes annotates
EGO_STEP_M = 2.5  # ego moves 5 m/s


# -- synthetic input ---------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticFrame:
    images: NDArray[np.float32]  # (6, 3, H, W) normalized like real inputs (about zero mean, unit std)
    img2lidar: NDArray[np.float32]  # (6, 4, 4)
    timestamp_ns: int
    model_to_world: Transform


def rig_img2lidar(cfg: ModelConfig) -> NDArray[np.float32]:
    """img2lidar of the nuScenes rig (config/rig_nuscenes.yaml) at the model's input size."""
    from syncl_ros.model.inputs import camera_geometry
    from syncl_ros.rig import load_rig

    rig = load_rig()
    _, img2lidar = camera_geometry(
        [c.intrinsics() for c in rig.cameras],
        [c.to_base() for c in rig.cameras],
        [(c.width, c.height) for c in rig.cameras],
        cfg.input,
    )
    return img2lidar


def synthetic_sequence(
    cfg: ModelConfig, frames: int, seed: int = 0, distinct: int = 4
) -> Iterator[SyntheticFrame]:
    """`frames` frames cycling through `distinct` fixed random image sets, the ego driving straight."""
    rng = np.random.default_rng(seed)
    shape = (6, 3, cfg.input.height, cfg.input.width)
    pool = [rng.standard_normal(shape, dtype=np.float32) for _ in range(min(distinct, frames))]
    img2lidar = rig_img2lidar(cfg)
    for i in range(frames):
        pose = Transform.from_xy_yaw(EGO_STEP_M * i, 0.0, 0.0)
        yield SyntheticFrame(pool[i % len(pool)], img2lidar, i * FRAME_PERIOD_NS, pose)


def busy_tracker_config(cfg: TrackerConfig) -> TrackerConfig:
    """The host worst case of both trackers: every detection may be born and every track confirmed
    (queries: all S slots live; greedy: every detection considered, up to its max_detections)."""
    greedy = dataclasses.replace(cfg.greedy, score=0.0)
    return dataclasses.replace(cfg, birth_score=0.0, update_score=0.0, output_score=0.0, greedy=greedy)


# -- cases and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchCase:
    label: str
    backend: str  # torch | onnxruntime | tensorrt
    device: str
    precision: str = "fp32"
    options: dict[str, Any] = field(default_factory=dict)
    model: str = ""  # checkpoint or export folder; filled in by the runner

    @property
    def is_reference(self) -> bool:
        return self.backend == "torch" and self.precision == "fp32" and not self.options.get("cuda_graphs")


@dataclass
class StageStats:
    median_ms: float
    p90_ms: float

    @staticmethod
    def of(seconds: Sequence[float]) -> StageStats:
        ms = np.asarray(seconds) * 1e3
        return StageStats(float(np.median(ms)), float(np.percentile(ms, 90)))


@dataclass
class BenchRow:
    case: BenchCase
    frames: int = 0
    encode: StageStats | None = None
    decode: StageStats | None = None
    tracker: StageStats | None = None  # the query tracker (the decoder ran with its slots)
    greedy_tracker: StageStats | None = None  # on the same decoder outputs; not in total
    total: StageStats | None = None  # encode + decode + query tracker
    peak_rss_mib: float | None = None
    gpu_peak_mib: float | None = None  # torch allocations only (TensorRT's own memory is not seen)
    speedup: float | None = None  # torch eager frame median / this frame median, same device
    error: str | None = None


# BenchRow's per-frame stages, in the order CaseSamples holds them.
STAGES = ("encode", "decode", "tracker", "greedy_tracker", "total")


def default_cases(device: str) -> list[BenchCase]:
    """CPU: torch eager vs onnxruntime. CUDA (when present): torch FP32 / FP16 / FP16 + CUDA graphs,
    onnxruntime's CUDA provider and TensorRT FP16 where those are installed."""
    cases = []
    if device in ("auto", "cpu"):
        cases += [BenchCase("torch eager", "torch", "cpu"), BenchCase("onnxruntime", "onnxruntime", "cpu")]
    if device == "cuda" or (device == "auto" and cuda_available()):
        cases += [
            BenchCase("torch eager", "torch", "cuda"),
            BenchCase("torch fp16", "torch", "cuda", "fp16"),
            BenchCase("torch fp16+graphs", "torch", "cuda", "fp16", {"cuda_graphs": True}),
        ]
        if _has_ort_cuda():
            cases.append(BenchCase("onnxruntime", "onnxruntime", "cuda"))
        cases.append(BenchCase("tensorrt fp16", "tensorrt", "cuda", "fp16"))
    return cases


def _has_ort_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


# -- measuring one case ------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB.

    Linux's VmHWM is the peak of the current address space. getrusage's
    ru_maxrss is not usable in a spawned child: it also counts the parent's
    memory at the fork that precedes the exec, which would charge the parent's
    exports and imports to every backend.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


@dataclass
class CaseSamples:
    """Raw per-frame seconds of one case from one process (one round)."""

    stages: list[list[float]] = field(default_factory=list)  # STAGES, in that order
    peak_rss_mib: float | None = None
    gpu_peak_mib: float | None = None
    error: str | None = None


def run_case(
    case: BenchCase,
    model_cfg: ModelConfig,
    tracker_cfg: TrackerConfig,
    frames: int,
    warmup: int,
    threads: int,
    cache_dir: str,
) -> CaseSamples:
    """Measure one case in this process; failures become the result's error, not an exception."""
    uses_torch = case.backend != "onnxruntime"  # onnxruntime runs without loading PyTorch at all
    if uses_torch:
        import torch

        torch.set_num_threads(threads)
    try:
        backend = create_backend(
            case.backend,
            case.model,
            case.device,
            case.precision,
            cache_dir=cache_dir,
            threads=threads,
            **case.options,
        )
        if uses_torch and case.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        backend.warmup(warmup)
        stages = _time_frames(backend, model_cfg, tracker_cfg, frames, warmup)
    except BackendUnavailable as err:
        return CaseSamples(error=f"unavailable: {err}")
    except (RuntimeError, ValueError) as err:  # e.g. CUDA out of memory: report it, measure the rest
        return CaseSamples(error=f"failed: {type(err).__name__}: {err}")
    on_gpu = uses_torch and case.device.startswith("cuda")
    gpu = torch.cuda.max_memory_allocated() / (1 << 20) if on_gpu else None
    return CaseSamples(stages, peak_rss_mib(), gpu)


def _time_frames(
    backend: Any, model_cfg: ModelConfig, tracker_cfg: TrackerConfig, frames: int, warmup: int
) -> list[list[float]]:
    query = make_tracker(dataclasses.replace(tracker_cfg, method="queries"), model_cfg, seed=0)
    greedy = make_tracker(dataclasses.replace(tracker_cfg, method="greedy"), model_cfg, seed=0)
    pipeline = FramePipeline(backend, query, model_cfg.input, CAMERA_CHANNELS)
    samples: list[list[float]] = [[] for _ in STAGES]
    for i, frame in enumerate(synthetic_sequence(model_cfg, warmup + frames)):
        inputs = FrameInputs(frame.timestamp_ns, frame.images, frame.img2lidar, frame.model_to_world)
        result = pipeline.track(inputs)  # the decoder runs with the query tracker's slots
        greedy_ms = _host_step(greedy, frame, result.outputs) * 1e3
        if i >= warmup:
            ms = result.timings_ms
            frame_ms = (ms["encode"], ms["decode"], ms["tracker"], greedy_ms, sum(ms.values()))
            for stage, value in zip(samples, frame_ms, strict=True):
                stage.append(value / 1e3)
    return samples


def _host_step(tracker: Tracker, frame: SyntheticFrame, outputs: DecoderOutputs) -> float:
    """Seconds of a tracker's prepare + update on outputs the decoder made with the query tracker's
    slots: the greedy tracker reads only the Q detection rows, as many as with its own empty slots."""
    start = time.perf_counter()
    tracker.prepare(frame.timestamp_ns, frame.model_to_world)
    tracker.update(outputs)
    return time.perf_counter() - start


def summarize(case: BenchCase, results: Sequence[CaseSamples]) -> BenchRow:
    """One row from every round of a case: stats over all frames, the largest peak memory."""
    failed = next((r.error for r in results if r.error), None)
    if failed:
        return BenchRow(case, error=failed)
    stages = {name: [t for r in results for t in r.stages[k]] for k, name in enumerate(STAGES)}
    row = BenchRow(case, frames=len(stages["total"]))
    for name, seconds in stages.items():
        setattr(row, name, StageStats.of(seconds))
    row.peak_rss_mib = max(r.peak_rss_mib or 0.0 for r in results)
    gpu = [r.gpu_peak_mib for r in results if r.gpu_peak_mib is not None]
    row.gpu_peak_mib = max(gpu) if gpu else None
    return row


def round_order(count: int, rounds: int) -> list[list[int]]:
    """Case indices per round, direction alternating (ABBA...), so slow drifts of a shared
    machine's load hit every case alike."""
    forward = list(range(count))
    return [forward if r % 2 == 0 else forward[::-1] for r in range(rounds)]


# -- the whole run ---------------------------------------------------------------------------


def run_bench(
    cases: Sequence[BenchCase],
    checkpoint: Path,
    export_dir: Path,
    model_cfg: ModelConfig,
    tracker_cfg: TrackerConfig,
    frames: int = 30,
    warmup: int = 3,
    threads: int | None = None,
    cache_dir: Path | None = None,
    isolate: bool = True,
    rounds: int = 1,
) -> list[BenchRow]:
    """Run every case `rounds` times (each run in a fresh spawned process when isolate), `frames`
    timed frames per run, and fill in the speed-ups."""
    threads = threads or usable_cores()
    cases = [
        dataclasses.replace(c, model=str(checkpoint if c.backend == "torch" else export_dir)) for c in cases
    ]
    results: list[list[CaseSamples]] = [[] for _ in cases]
    for order in round_order(len(cases), rounds):
        for i in order:
            if results[i] and results[i][0].error:
                continue  # unavailable here: no point in asking again
            args = (
                cases[i],
                model_cfg,
                tracker_cfg,
                frames,
                warmup,
                threads,
                str(cache_dir or export_dir.parent),
            )
            results[i].append(_run_isolated(args) if isolate else run_case(*args))
    rows = [summarize(case, res) for case, res in zip(cases, results, strict=True)]
    add_speedups(rows)
    return rows


def _run_isolated(args: tuple[Any, ...]) -> CaseSamples:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run_case, *args).result()


def add_speedups(rows: list[BenchRow]) -> None:
    for row in rows:
        ref = next(
            (r for r in rows if r.case.is_reference and r.case.device == row.case.device and r.total), None
        )
        if ref is not None and ref.total is not None and row.total is not None:
            row.speedup = ref.total.median_ms / row.total.median_ms


# -- reporting ------------------------------------------------------------------------------------

COLUMNS = (
    "backend",
    "device",
    "precision",
    "encode ms p50 / p90",
    "decode ms p50 / p90",
    "host tracker (queries) ms p50 / p90",
    "host tracker (greedy) ms p50 / p90",
    "frame (queries) ms p50 / p90",
    "speed-up vs torch eager",
    "peak RSS MiB",
    "GPU MiB (torch)",
)


def _stage(s: StageStats | None) -> str:
    return "-" if s is None else f"{s.median_ms:.1f} / {s.p90_ms:.1f}"


def _cells(row: BenchRow) -> list[str]:
    c = row.case
    if row.error:
        blank = [""] * (len(COLUMNS) - 4)
        return [c.label, c.device, c.precision, row.error.replace("|", "/"), *blank]
    return [
        c.label,
        c.device,
        c.precision,
        _stage(row.encode),
        _stage(row.decode),
        _stage(row.tracker),
        _stage(row.greedy_tracker),
        _stage(row.total),
        "-" if row.speedup is None else f"{row.speedup:.2f}x",
        "-" if row.peak_rss_mib is None else f"{row.peak_rss_mib:.0f}",
        "-" if row.gpu_peak_mib is None else f"{row.gpu_peak_mib:.0f}",
    ]


def markdown_table(rows: Sequence[BenchRow]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def rows_to_json(rows: Sequence[BenchRow], context: dict[str, Any]) -> str:
    def convert(row: BenchRow) -> dict[str, Any]:
        d = dataclasses.asdict(row)
        d["case"].pop("model", None)
        return d

    return json.dumps({"context": context, "rows": [convert(r) for r in rows]}, indent=2)
