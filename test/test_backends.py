"""Backends: one interface, torch / onnxruntime parity over a tracked sequence, fallback, bench."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from training_fixtures import tiny_experiment

from syncl_ros.classes import TRACKING_LABELS
from syncl_ros.experiment.checkpoint import load_model, save_checkpoint
from syncl_ros.inference.backend import Backend, BackendUnavailable, empty_slots
from syncl_ros.inference.export import export_model
from syncl_ros.inference.factory import candidate_order, create_backend
from syncl_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from syncl_ros.inference.torch_backend import TorchBackend
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.bench import (
    BenchCase,
    busy_tracker_config,
    markdown_table,
    run_bench,
    synthetic_sequence,
)
from syncl_ros.tools import bench_cli
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.interface import Track
from syncl_ros.tracking.query_tracker import QueryTracker

EXP = tiny_experiment()
CFG = EXP.model
# With random weights every class score sits near the 1% prior; the class heads are scaled up so
# that scores spread over a range where births, confirmations and deaths all happen (see below).
CLS_SCALE = 4.0
THRESHOLD = 0.076


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = TrackerNet(CFG).eval()
    with torch.no_grad():
        for head in [*net.cls_heads, net.heatmap_head]:
            last = cast(torch.nn.Linear | torch.nn.Conv2d, cast(torch.nn.Sequential, head)[-1])
            last.weight.mul_(CLS_SCALE)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", net, EXP, {"weights": "random"})


@pytest.fixture(scope="module")
def export_dir(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(ckpt, tmp_path_factory.mktemp("onnx") / "export").folder


def run_sequence(backend: Backend, frames: int = 6) -> list[list[Track]]:
    cfg = TrackerConfig(birth_score=THRESHOLD, update_score=THRESHOLD, max_missed=1, output_score=0.0)
    tracker = QueryTracker(cfg, CFG, seed=0)
    reported = []
    for frame in synthetic_sequence(CFG, frames, seed=3):
        slots = tracker.prepare(frame.timestamp_ns, frame.model_to_world)
        reported.append(tracker.update(backend.decode(backend.encode(frame.images), frame.img2lidar, slots)))
    return reported


def test_torch_and_onnxruntime_track_alike(ckpt: Path, export_dir: Path) -> None:
    torch_frames = run_sequence(create_backend("torch", ckpt))
    ort_frames = run_sequence(create_backend("onnxruntime", export_dir))
    ids = [[t.track_id for t in frame] for frame in torch_frames]
    # The sequence exercises the track life cycle: tracks end and newer ones take their slots.
    assert all(ids) and max(max(f) for f in ids) > CFG.num_slots
    for a, b in zip(torch_frames, ort_frames, strict=True):
        assert [t.track_id for t in a] == [t.track_id for t in b]
        assert [t.label for t in a] == [t.label for t in b]
        np.testing.assert_allclose([t.box for t in a], [t.box for t in b], atol=1e-3)
        np.testing.assert_allclose([t.score for t in a], [t.score for t in b], atol=1e-5)


@pytest.mark.parametrize("cameras", [None, np.array([1, 1, 1, 0, 1, 1], bool)], ids=["six", "five"])
def test_single_frame_outputs_agree(ckpt: Path, export_dir: Path, cameras: NDArray[np.bool_] | None) -> None:
    frame = next(synthetic_sequence(CFG, 1))
    outs = []
    for backend in (create_backend("torch", ckpt), create_backend("onnxruntime", export_dir)):
        feats = backend.encode(frame.images)
        outs.append(backend.decode(feats, frame.img2lidar, empty_slots(backend.info), cameras))
    a, b = outs
    assert a.num_rows == b.num_rows == CFG.num_queries + CFG.dense_queries + CFG.num_slots
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.refs, b.refs, atol=1e-5)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-3)
    assert set(np.argmax(a.scores[:, sorted(TRACKING_LABELS)], 1)) == set(
        np.argmax(b.scores[:, sorted(TRACKING_LABELS)], 1)
    )


def test_static_info_and_warmup(ckpt: Path, export_dir: Path) -> None:
    for backend in (create_backend("torch", ckpt), create_backend("onnxruntime", export_dir)):
        info = backend.info
        assert info.input_size == (CFG.input.height, CFG.input.width)
        assert (info.num_slots, info.embed_dim) == (CFG.num_slots, CFG.embed_dim)
        assert info.num_det == CFG.num_queries + CFG.dense_queries
        backend.warmup(1)


def test_inputs_are_checked(export_dir: Path) -> None:
    backend = OnnxRuntimeBackend(export_dir)
    with pytest.raises(ValueError, match="images must be"):
        backend.encode(np.zeros((5, 3, CFG.input.height, CFG.input.width), np.float32))
    feats = backend.encode(np.zeros((6, 3, CFG.input.height, CFG.input.width), np.float32))
    slots = empty_slots(backend.info)
    slots.refs = slots.refs[:-1]
    eye = np.tile(np.eye(4, dtype=np.float32), (6, 1, 1))
    with pytest.raises(ValueError, match=r"slots\.refs"):
        backend.decode(feats, eye, slots)
    slots = empty_slots(backend.info)
    with pytest.raises(ValueError, match="at least one camera"):
        backend.decode(feats, eye, slots, np.zeros(6, bool))
    with pytest.raises(ValueError, match="cameras must be"):
        backend.decode(feats, eye, slots, np.ones(5, bool))


@pytest.mark.slow  # exports or benchmarks a whole model: seconds
def test_auto_on_cpu_picks_onnxruntime_and_exports_into_the_cache(ckpt: Path, tmp_path: Path) -> None:
    backend = create_backend("auto", ckpt, cache_dir=tmp_path)
    assert backend.name == "onnxruntime" and backend.device == "cpu"
    exported = list((tmp_path / "onnx").iterdir())
    assert len(exported) == 1 and (exported[0] / "export.json").is_file()
    stamp = (exported[0] / "decoder.onnx").stat().st_mtime_ns
    create_backend("onnxruntime", ckpt, cache_dir=tmp_path)  # reuses the verified export
    assert (exported[0] / "decoder.onnx").stat().st_mtime_ns == stamp


def test_tensorrt_falls_back_and_says_why(
    ckpt: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="syncl_ros.inference"):
        backend = create_backend("tensorrt", ckpt, "cuda", "fp16", fallback=["torch"], cache_dir=tmp_path)
    assert backend.name == "torch"
    if not torch.cuda.is_available():  # asked for CUDA, none here: torch runs on the CPU, in FP32
        assert (backend.device, backend.precision) == ("cpu", "fp32")
    assert any("tensorrt" in r.getMessage() and "unavailable" in r.getMessage() for r in caplog.records)
    assert backend.selection[0].startswith("tensorrt:") and backend.selection[-1].startswith("using torch")


def test_tensorrt_without_fallback_is_a_clear_error(ckpt: Path, tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
            create_backend("tensorrt", ckpt, "cuda", cache_dir=tmp_path)
    else:  # pragma: no cover - machines with TensorRT
        pytest.skip("TensorRT is installed here")


def test_torch_needs_a_checkpoint_and_cpu_has_no_fp16(ckpt: Path, export_dir: Path) -> None:
    with pytest.raises(BackendUnavailable, match="needs a checkpoint"):
        create_backend("torch", export_dir)
    backend = create_backend("torch", export_dir, fallback=["onnxruntime"])
    assert backend.name == "onnxruntime"
    assert create_backend("torch", ckpt, "cpu", "fp16").precision == "fp32"
    net, _, _ = load_model(ckpt)
    with pytest.raises(BackendUnavailable, match="CUDA"):
        TorchBackend(net, "cpu", "fp16")


def test_candidate_order() -> None:
    assert candidate_order("auto", "cpu", []) == ["onnxruntime", "torch"]
    assert candidate_order("auto", "cuda", []) == ["tensorrt", "onnxruntime", "torch"]
    assert candidate_order("tensorrt", "cuda", ["onnxruntime", "tensorrt", "torch"]) == [
        "tensorrt",
        "onnxruntime",
        "torch",
    ]
    with pytest.raises(ValueError, match="unknown backend"):
        candidate_order("openvino", "cpu", [])


def test_unknown_model_or_precision_fail_before_any_backend(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_backend("auto", tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="precision"):
        create_backend("auto", tmp_path, precision="int8")


def test_offline_style_torch_backend_still_works(ckpt: Path) -> None:
    net, _, _ = load_model(ckpt)
    backend = TorchBackend(net, "cpu")
    frame = next(synthetic_sequence(CFG, 1))
    feats = backend.encode(frame.images)
    assert isinstance(feats, torch.Tensor) and feats.shape[:3] == (1, 6, CFG.embed_dim)
    out = backend.decode(feats, frame.img2lidar, empty_slots(backend.info))
    assert out.boxes.dtype == np.float64 and out.num_rows == backend.info.num_rows


def test_bench_measures_every_stage(ckpt: Path, export_dir: Path) -> None:
    cases = [BenchCase("torch eager", "torch", "cpu"), BenchCase("onnxruntime", "onnxruntime", "cpu")]
    rows = run_bench(
        cases,
        ckpt,
        export_dir,
        CFG,
        busy_tracker_config(EXP.tracker),
        frames=2,
        warmup=1,
        threads=1,
        isolate=False,
    )
    assert [r.error for r in rows] == [None, None]
    assert rows[0].speedup == pytest.approx(1.0)
    for row in rows:
        assert row.encode and row.decode and row.tracker and row.total and row.peak_rss_mib
        assert row.greedy_tracker and row.greedy_tracker.median_ms > 0.0
        assert row.total.median_ms >= row.encode.median_ms
    table = markdown_table(rows)
    assert "torch eager" in table and "onnxruntime" in table and "x |" in table
    assert "host tracker (queries)" in table and "host tracker (greedy)" in table
    header, _, first = table.splitlines()[:3]
    assert first.count("|") == header.count("|")


def test_busy_config_loads_both_trackers() -> None:
    busy = busy_tracker_config(EXP.tracker)
    assert (busy.birth_score, busy.update_score, busy.output_score) == (0.0, 0.0, 0.0)
    assert busy.greedy.score == 0.0 and busy.greedy.max_detections == EXP.tracker.greedy.max_detections


@pytest.mark.slow  # exports or benchmarks a whole model: seconds
def test_bench_cli(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench_cli.configure_parser(parser)
    argv = ["backends", "--model", str(ckpt), "--frames", "1", "--warmup", "1", "--device", "cpu"]
    argv += [
        "--cache-dir",
        str(tmp_path),
        "--json",
        str(tmp_path / "b.json"),
        "--in-process",
        "--threads",
        "1",
    ]
    assert bench_cli.main(parser.parse_args(argv)) == 0
    assert "| onnxruntime | cpu |" in capsys.readouterr().out
    payload = json.loads((tmp_path / "b.json").read_text())
    assert [r["case"]["backend"] for r in payload["rows"]] == ["torch", "onnxruntime"]
    assert all(r["tracker"] and r["greedy_tracker"] for r in payload["rows"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("choice", "overlay", "expected"),
    [
        ("both", "off", ["queries", "greedy"]),
        ("greedy", "off", ["greedy"]),
        ("greedy", "both", ["greedy"] * 2),
    ],
)
def test_bench_node_runs_a_node_per_tracker(
    choice: str,
    overlay: str,
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No ROS here: the node, the player and the listener are stand-ins; what is checked is the
    `tracker.method` and `overlay` parameters each node gets, the row each run makes, and the table and
    latency histograms written from the node's latency_log."""
    from syncl_ros.ros import bench_node

    started: list[str] = []
    overlays: list[object] = []

    def start_node(params: dict[str, object], env: object) -> argparse.Namespace:
        started.append(str(params["tracker.method"]))
        overlays.append(params["overlay"])
        frame = {"assemble": 3.0, "encode": 20.0, "decode": 17.0, "tracker": 1.0, "receive_to_publish": 90.0}
        frame.update({"overlay": 4.0} if params["overlay"] else {})
        Path(str(params["latency_log"])).write_text((json.dumps(frame) + "\n") * 30)
        return argparse.Namespace(pid=0)

    def listen(seconds: float, pid: int) -> dict[str, object]:
        diag = {"tracker.method": started[-1], "latency.receive_to_publish.p50_ms": "91.0"}
        return {
            "frames": 24,
            "rate_hz": 12.0,
            "cpu_cores": 1.5,
            "rss_start_mib": 500.0,
            "rss_end_mib": 510.0,
            "diag": diag,
        }

    monkeypatch.setattr(bench_node, "start_node", start_node)
    monkeypatch.setattr(bench_node, "start_player", lambda *a, **k: None)
    monkeypatch.setattr(bench_node, "stop", lambda *procs: None)
    monkeypatch.setattr(bench_node, "listen", listen)
    parser = argparse.ArgumentParser()
    bench_cli.configure_parser(parser)
    argv = ["node", "--model", str(tmp_path / "m.pt"), "--bag", str(tmp_path), "--seconds", "2"]
    argv += ["--out", str(tmp_path / "out"), "--overlay", overlay]
    assert bench_cli.main(parser.parse_args([*argv, "--tracker", choice])) == 0
    assert started == expected
    assert overlays == ([False, True] if overlay == "both" else [False] * len(expected))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == [f"| {m}" for m in expected]
    assert all("12.00 (24 in 2 s) | 91.0 / ?" in row for row in rows)
    assert [row.split(" | ")[1] for row in rows] == ["on" if o else "off" for o in overlays]
    table = (tmp_path / "out" / "bench_node.md").read_text()
    assert table.count("\n| ") == len(expected) + 1
    plot = cv2.imread(str(tmp_path / "out" / "latency.png"))
    assert plot is not None and plot.shape[1] > 1000


def test_decode_makes_no_host_tensors_once_warm(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA graph capture forbids host-to-device copies; with the cached box coder installed (as the
    torch backend does for cuda_graphs), a warm decode creates no tensors from Python data."""
    from syncl_ros.inference.torch_backend import _StaticBoxCoder

    net, _, _ = load_model(ckpt)
    backend = TorchBackend(net, "cpu")
    frame = next(synthetic_sequence(CFG, 1))
    feats = backend.encode(frame.images)
    expected = backend.decode(feats, frame.img2lidar, empty_slots(backend.info))
    backend.net.coder = _StaticBoxCoder(net.coder.pc_range)
    backend.decode(feats, frame.img2lidar, empty_slots(backend.info))  # warm: fills the cache

    def no_host_tensors(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.tensor called in the decode path")

    monkeypatch.setattr(torch, "tensor", no_host_tensors)
    out = backend.decode(feats, frame.img2lidar, empty_slots(backend.info))
    np.testing.assert_array_equal(out.boxes, expected.boxes)
