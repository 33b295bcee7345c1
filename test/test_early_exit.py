"""Dynamic early exit across the decoder layers: the exit rule stops where it should; the decoder
cut after each layer (ONNX graphs, torch modules) gives the full decoder's layer outputs; the frame
pipeline stops where the rule says; the switch is off by default and travels with the settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from numpy.typing import NDArray
from training_fixtures import TINY_MODEL, tiny_experiment

from syncl_ros.classes import NUM_CLASSES
from syncl_ros.config import ConfigError
from syncl_ros.experiment import Experiment, load_experiment, with_overrides
from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.geometry import Transform
from syncl_ros.inference.backend import Backend, empty_slots
from syncl_ros.inference.export import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    LAYER_CONTEXT,
    LAYER_QUERIES,
    export_model,
    read_manifest,
)
from syncl_ros.inference.factory import create_backend
from syncl_ros.inference.onnx_graph import TENSORRT_OPS_FILE, read_operator_list, tensorrt_problems
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.bench import synthetic_sequence
from syncl_ros.pipeline.frame_inputs import FrameInputs
from syncl_ros.pipeline.frame_pipeline import FramePipeline
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.tracking.config import EarlyExitConfig, TrackerConfig
from syncl_ros.tracking.early_exit import EarlyExit, early_exit_for
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots
from syncl_ros.tracking.query_tracker import QueryTracker

# -- the rule on hand-made outputs -------------------------------------------------------------------

Q, S, C = 4, 3, 8  # detection rows, slots, feature width
PC = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
CAR = 0  # a tracking class


def rule_config(**early: Any) -> TrackerConfig:
    settings: dict[str, Any] = {
        "enabled": True,
        "min_layers": 2,
        "score_margin": 0.1,
        "max_move_m": 0.5,
        "full_every": 10,
    }
    settings.update(early)
    exit_cfg = EarlyExitConfig(**settings)
    return TrackerConfig(birth_score=0.4, update_score=0.4, early_exit=exit_cfg)


def slots(live: tuple[int, ...] = (0,), xy: tuple[float, float] = (10.0, 5.0)) -> TrackSlots:
    s = TrackSlots.empty(S, C)
    s.mask[list(live)] = True
    s.refs[:, :2] = (np.asarray(xy) - np.asarray(PC[:2])) / (np.asarray(PC[3:5]) - np.asarray(PC[:2]))
    return s


def outputs(
    det: list[float], tracks: list[float], moved: float = 0.0, base: tuple[float, float] = (10.0, 5.0)
) -> DecoderOutputs:
    """Rows scoring `det` then `tracks` (car), every box at `base` + (moved, 0)."""
    scores = np.zeros((Q + S, NUM_CLASSES), np.float32)
    scores[:, CAR] = det + tracks
    boxes = np.zeros((Q + S, 9))
    boxes[:, :2] = base
    boxes[:, 0] += moved
    boxes[:, 3:6] = 1.0
    return DecoderOutputs(
        scores, boxes, np.full((Q + S, 3), 0.5, np.float32), np.zeros((Q + S, C), np.float32)
    )


QUIET = [0.05] * Q  # no detection anywhere near the birth score
CONFIDENT = [0.9, 0.1, 0.0]  # slot 0 live and sure; the others free


def rule_after_full_frame(config: TrackerConfig, layers: int = 3, live: tuple[int, ...] = (0,)) -> EarlyExit:
    """A rule whose first frame (full depth, after the start) is done: the next may stop early."""
    rule = EarlyExit(config, layers)
    rule.start_frame(slots(live), resets=0, pc_range=PC)
    assert rule.full_depth
    rule.start_frame(slots(live), resets=0, pc_range=PC)
    assert not rule.full_depth
    return rule


def test_a_settled_frame_stops_after_min_layers() -> None:
    rule = rule_after_full_frame(rule_config())
    assert not rule.stops_after(1, outputs(QUIET, CONFIDENT))  # below min_layers
    assert rule.stops_after(2, outputs(QUIET, CONFIDENT, moved=0.3))


@pytest.mark.parametrize(
    ("det", "tracks", "moved", "why"),
    [
        (QUIET, [0.45, 0.1, 0.0], 0.0, "a live track scores near update_score"),
        (QUIET, [0.35, 0.1, 0.0], 0.0, "... from below"),
        ([0.05, 0.33, 0.05, 0.05], CONFIDENT, 0.0, "a detection scores near the birth score"),
        ([0.05, 0.47, 0.05, 0.05], CONFIDENT, 0.0, "... from above"),
        (QUIET, CONFIDENT, 0.8, "a confirmed track's box still moves"),
        ([0.05, 0.9, 0.05, 0.05], [0.05, 0.1, 0.0], 0.8, "a new track's box still moves"),
    ],
)
def test_an_unsettled_frame_goes_on(det: list[float], tracks: list[float], moved: float, why: str) -> None:
    rule = rule_after_full_frame(rule_config())
    rule.stops_after(1, outputs(QUIET, CONFIDENT))
    assert not rule.stops_after(2, outputs(det, tracks, moved)), why


def test_what_no_decision_rests_on_does_not_hold_a_frame() -> None:
    rule = rule_after_full_frame(rule_config(), live=(0, 1))
    rule.stops_after(1, outputs(QUIET, [0.05, 0.9, 0.4]))
    # slot 0 coasts for sure, slot 1 is confirmed and still; a free slot's score near the threshold
    # and a coasting track's or an unborn detection's moving box decide nothing
    assert rule.stops_after(2, outputs(QUIET, [0.05, 0.9, 0.4], moved=0.0))
    moving = outputs(QUIET, [0.05, 0.9, 0.4])
    moving.boxes[[0, Q], 0] += 3.0  # an unborn detection and the coasting track move
    rule.stops_after(1, outputs(QUIET, [0.05, 0.9, 0.4]))
    assert rule.stops_after(2, moving)


def test_after_layer_1_tracks_compare_with_their_propagated_position_and_births_go_on() -> None:
    rule = rule_after_full_frame(rule_config(min_layers=1))
    assert rule.stops_after(1, outputs(QUIET, CONFIDENT, moved=0.3))
    rule.start_frame(slots(), resets=0, pc_range=PC)
    assert not rule.stops_after(1, outputs(QUIET, CONFIDENT, moved=0.8))  # off its propagated point
    rule.start_frame(slots(), resets=0, pc_range=PC)
    assert not rule.stops_after(1, outputs([0.9, 0.05, 0.05, 0.05], CONFIDENT))  # a birth: no earlier box


def test_a_non_finite_box_never_settles() -> None:
    rule = rule_after_full_frame(rule_config())
    rule.stops_after(1, outputs(QUIET, CONFIDENT))
    broken = outputs(QUIET, CONFIDENT)
    broken.boxes[Q, 0] = np.nan
    assert not rule.stops_after(2, broken)


def test_the_last_layer_and_full_depth_frames_never_stop() -> None:
    rule = rule_after_full_frame(rule_config(min_layers=1), layers=2)
    assert rule.stops_after(1, outputs(QUIET, CONFIDENT))
    rule.start_frame(slots(), resets=0, pc_range=PC)
    rule.stops_after(1, outputs(QUIET, [0.45, 0.1, 0.0]))
    assert not rule.stops_after(2, outputs(QUIET, CONFIDENT))  # the last layer: nothing to skip
    assert EarlyExit(rule_config(min_layers=3), 3).full_depth  # no layer it may stop after


def test_full_depth_on_every_nth_frame_and_after_each_reset() -> None:
    rule = EarlyExit(rule_config(full_every=3), 3)
    full = []
    for resets in (0, 0, 0, 0, 0, 1, 1, 1, 1, 2):
        rule.start_frame(slots(), resets, PC)
        full.append(rule.full_depth)
    assert full == [True, False, False, True, False, True, False, False, True, True]


def test_the_greedy_tracker_exits_on_its_own_detection_score() -> None:
    config = dataclasses.replace(rule_config(score_margin=0.05), method="greedy")
    rule = EarlyExit(config, 3)
    assert rule.birth_score == config.greedy.score == 0.1
    rule.start_frame(TrackSlots.empty(S, C), 0, PC)
    rule.start_frame(TrackSlots.empty(S, C), 0, PC)
    rule.stops_after(1, outputs([0.02] * Q, [0.0] * S))
    assert rule.stops_after(2, outputs([0.02] * Q, [0.0] * S))
    rule.start_frame(TrackSlots.empty(S, C), 0, PC)
    rule.stops_after(1, outputs([0.02] * Q, [0.0] * S))
    assert not rule.stops_after(2, outputs([0.02, 0.12, 0.02, 0.02], [0.0] * S))


# -- the switch ---------------------------------------------------------------------------------------


def test_off_by_default_settable_and_stored_with_the_experiment() -> None:
    exp = load_experiment("tiny")
    assert not exp.tracker.early_exit.enabled and early_exit_for(exp.tracker, 3) is None
    on = with_overrides(exp, ["tracker.early_exit.enabled=true", "tracker.early_exit.max_move_m=0.3"])
    assert isinstance(early_exit_for(on.tracker, 3), EarlyExit)
    assert on.tracker.early_exit.max_move_m == 0.3
    assert Experiment.from_dict(on.to_dict()) == on  # as a checkpoint or a release stores it
    for bad in ("min_layers=0", "score_margin=1.5", "max_move_m=-1", "full_every=0", "enabled=2"):
        with pytest.raises(ConfigError, match="early_exit"):
            with_overrides(exp, [f"tracker.early_exit.{bad}"])


# -- the decoder cut after each layer ---------------------------------------------------------------

PLAIN = dataclasses.replace(TINY_MODEL, num_layers=3)
REANCHORED = dataclasses.replace(
    PLAIN,
    track_reanchor_m=500.0,
    track_seed_content=True,
    track_claims_seed=True,
    track_attention="asymmetric",
)
MODELS = {"plain": PLAIN, "reanchored": REANCHORED}  # the second with hidden rows and blind track rows


def export_random(name: str, root: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    exp = tiny_experiment(model=MODELS[name])
    ckpt = save_checkpoint(root / "model.pt", TrackerNet(exp.model).eval(), exp, {"weights": "random"})
    return ckpt, export_model(ckpt, root / "export").folder


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return export_random(request.param, tmp_path_factory.mktemp(f"early_exit_{request.param}"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return export_random("plain", tmp_path_factory.mktemp("early_exit_pipeline"))


def frame_inputs(cfg: ModelConfig, seed: int = 0) -> dict[str, NDArray[np.float32]]:
    """Inputs of the decoder graph: live and free slots, one camera missing."""
    rng = np.random.default_rng(seed)
    h, w = cfg.input.height // 16, cfg.input.width // 16
    mask = np.zeros((1, cfg.num_slots), np.float32)
    mask[0, :5] = 1.0
    return {
        "features": rng.standard_normal((1, 6, cfg.embed_dim, h, w)).astype(np.float32),
        "img2lidar": next(synthetic_sequence(cfg, 1)).img2lidar[None].astype(np.float32),
        "track_embeddings": rng.standard_normal((1, cfg.num_slots, cfg.embed_dim)).astype(np.float32)
        * mask[..., None],
        "track_refs": rng.uniform(0.4, 0.6, (1, cfg.num_slots, 3)).astype(np.float32),
        "track_mask": mask,
        "camera_mask": np.array([[1, 1, 0, 1, 1, 1]], np.float32),
    }


def chained_layers(
    export: Path, inputs: dict[str, NDArray[np.float32]]
) -> list[dict[str, NDArray[np.float32]]]:
    """The per-layer graphs run in a chain: every layer's outputs by name."""
    manifest = read_manifest(export)
    count = manifest["experiment"]["model"]["num_layers"]
    per_layer = []
    values: dict[str, NDArray[np.float32]] = {}
    for k in range(1, count + 1):
        session = ort.InferenceSession(str(export / f"decoder_layer{k}.onnx"))
        if k == 1:
            feeds: dict[str, NDArray[np.float32] | None] = dict(inputs)
        else:
            queries = dict(zip(LAYER_QUERIES, (values["embeddings"], values["refs"]), strict=True))
            feeds = {i.name: queries.get(i.name, values.get(i.name)) for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        values = {**values, **dict(zip(names, session.run(None, feeds), strict=True))}
        per_layer.append({n: values[n] for n in DECODER_OUTPUTS})
    return per_layer


def test_per_layer_graphs_give_the_full_decoders_layer_outputs(exported: tuple[Path, Path]) -> None:
    ckpt, export = exported
    exp = Experiment.from_dict(read_manifest(export)["experiment"])
    cfg = exp.model
    inputs = frame_inputs(cfg)
    layers = chained_layers(export, inputs)
    # The single graph's outputs are the last layer's, exactly (same operators, same order).
    single = ort.InferenceSession(str(export / "decoder.onnx")).run(None, inputs)
    for name, value in zip(DECODER_OUTPUTS, single, strict=True):
        np.testing.assert_array_equal(layers[-1][name], value, err_msg=name)
    # Every layer's outputs are the torch decoder's outputs of that layer.
    net = TrackerNet(cfg).eval()
    net.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    t = {k: torch.from_numpy(v) for k, v in inputs.items()}
    with torch.no_grad():
        out = net.decode(
            t["features"],
            t["img2lidar"],
            t["track_embeddings"],
            t["track_refs"],
            t["track_mask"],
            camera_mask=t["camera_mask"],
        )
    assert len(layers) == cfg.num_layers == 3
    for k, layer in enumerate(layers):
        np.testing.assert_allclose(layer["scores"], out.logits[k].sigmoid().numpy(), atol=1e-5)
        np.testing.assert_allclose(layer["codes"], out.codes[k].numpy(), atol=1e-3)
        np.testing.assert_allclose(layer["refs"], out.refs[k].numpy(), atol=1e-5)
    np.testing.assert_allclose(layers[-1]["embeddings"], out.embeddings.numpy(), atol=1e-3)


def test_per_layer_graphs_are_static_and_tensorrt_friendly(exported: tuple[Path, Path]) -> None:
    import onnx

    _, export = exported
    manifest = read_manifest(export)
    first, second = manifest["graphs"]["decoder_layer1"], manifest["graphs"]["decoder_layer2"]
    assert [i["name"] for i in first["inputs"]] == list(DECODER_INPUTS)
    context = [o["name"] for o in first["outputs"]][len(DECODER_OUTPUTS) :]
    assert context == list(LAYER_CONTEXT[: len(context)])
    assert [i["name"] for i in second["inputs"]] == [*LAYER_QUERIES, *context]
    supported = read_operator_list(TENSORRT_OPS_FILE)
    for k in (1, 2, 3):
        model = onnx.load(str(export / f"decoder_layer{k}.onnx"))
        assert tensorrt_problems(model, supported) == []  # static shapes, known operators, small TopK


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_backends_decode_layer_by_layer(exported: tuple[Path, Path], name: str) -> None:
    ckpt, export = exported
    backend = create_backend(name, ckpt if name == "torch" else export, layers=True)
    frame = next(synthetic_sequence(backend_cfg(export), 1, seed=2))
    features = backend.encode(frame.images)
    slots = empty_slots(backend.info)
    full = backend.decode(features, frame.img2lidar, slots)
    layers = list(backend.decode_layers(features, frame.img2lidar, slots))
    assert len(layers) == backend.info.num_layers == 3
    for field in ("scores", "boxes", "refs", "embeddings"):
        np.testing.assert_allclose(getattr(layers[-1], field), getattr(full, field), atol=1e-6, err_msg=field)
    assert not np.allclose(layers[0].boxes, full.boxes)  # a layer of its own, not the last one again


def backend_cfg(export: Path) -> ModelConfig:
    return Experiment.from_dict(read_manifest(export)["experiment"]).model


# -- the frame pipeline ---------------------------------------------------------------------------------


def run_pipeline(backend: Backend, tracker_cfg: TrackerConfig, frames: int) -> list[tuple[int, list[int]]]:
    """(layers run, reported track ids) per frame of a synthetic sequence."""
    rule = early_exit_for(tracker_cfg, backend.info.num_layers)
    tracker = QueryTracker(tracker_cfg, PLAIN, seed=0)
    pipeline = FramePipeline(backend, tracker, INPUT, CAMERA_CHANNELS, early_exit=rule)
    got = []
    for frame in synthetic_sequence(CFG_SEQ, frames, seed=4):
        inputs = FrameInputs(frame.timestamp_ns, frame.images, frame.img2lidar, frame.model_to_world)
        result = pipeline.track(inputs)
        got.append((result.decoder_layers, [t.track_id for t in result.tracks]))
    return got


CFG_SEQ = PLAIN
INPUT = PLAIN.input
# Random weights score near the 1% prior: thresholds there make births and confirmations happen.
LOOSE = TrackerConfig(birth_score=0.012, update_score=0.012, output_score=0.0)


def test_the_pipeline_stops_where_the_rule_says(plain: tuple[Path, Path]) -> None:
    _, export = plain
    backend = create_backend("onnxruntime", export, layers=True)
    always = EarlyExitConfig(enabled=True, min_layers=2, score_margin=0.0, max_move_m=1e6, full_every=3)
    never = dataclasses.replace(always, max_move_m=0.0)
    off = run_pipeline(backend, LOOSE, 5)
    assert [layers for layers, _ in off] == [3] * 5
    stopping = run_pipeline(backend, dataclasses.replace(LOOSE, early_exit=always), 5)
    assert [layers for layers, _ in stopping] == [3, 2, 2, 3, 2]  # full depth on frames 0 and 3
    assert any(ids for _, ids in stopping) and stopping != off  # layer 2 tracks otherwise
    going_on = run_pipeline(backend, dataclasses.replace(LOOSE, early_exit=never), 5)
    assert going_on == off  # every layer ran: the same tracks as the single graph's


def test_a_reset_runs_the_next_frame_at_full_depth(plain: tuple[Path, Path]) -> None:
    ckpt, _ = plain
    backend = create_backend("torch", ckpt)
    always = EarlyExitConfig(enabled=True, min_layers=1, score_margin=0.0, max_move_m=1e6, full_every=100)
    cfg = dataclasses.replace(LOOSE, early_exit=always)
    tracker = QueryTracker(cfg, PLAIN, seed=0)
    pipeline = FramePipeline(backend, tracker, INPUT, CAMERA_CHANNELS, early_exit=early_exit_for(cfg, 3))
    layers = []
    for i, frame in enumerate(synthetic_sequence(CFG_SEQ, 4, seed=4)):
        if i == 2:
            pipeline.reset()
        inputs = FrameInputs(frame.timestamp_ns, frame.images, frame.img2lidar, Transform.identity())
        layers.append(pipeline.track(inputs).decoder_layers)
    assert layers[0] == 3 and layers[2] == 3  # the first frame and the first after the reset
    assert layers[1] < 3 and layers[3] < 3


# -- the benchmark ----------------------------------------------------------------------------------


def bench(argv: list[str]) -> int:
    import argparse

    from syncl_ros.tools import bench_cli

    parser = argparse.ArgumentParser()
    bench_cli.configure_parser(parser)
    return bench_cli.main(parser.parse_args(["early-exit", *argv]))


@pytest.mark.slow  # exports or benchmarks a whole model: seconds
def test_bench_times_each_exit_layer(plain: tuple[Path, Path], tmp_path: Path) -> None:
    import json

    ckpt, _ = plain
    argv = ["--synthetic", "--model", str(ckpt), "--frames", "2", "--warmup", "1", "--threads", "1"]
    assert bench([*argv, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "early_exit.json").read_text())
    assert list(report["rows"]) == ["single graph", *(f"stop after layer {k}" for k in (1, 2, 3))]
    assert all(row["median"] > 0.0 for row in report["rows"].values())


@pytest.mark.slow
def test_bench_tracks_a_split_at_full_depth_and_with_early_exit(
    plain: tuple[Path, Path], synth_val_root: Path, tmp_path: Path
) -> None:
    import json

    ckpt, _ = plain
    loose = ["tracker.birth_score=0.0", "tracker.update_score=0.0", "tracker.output_score=0.0"]
    always = ["tracker.early_exit.max_move_m=1000000.0", "tracker.early_exit.full_every=3"]
    argv = [str(synth_val_root), "--model", str(ckpt), "--threads", "1", "--warmup", "0", "--no-progress"]
    argv += [a for s in (*loose, *always) for a in ("--set", s)]
    assert bench([*argv, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "early_exit.json").read_text())
    full, early = report["rows"]["full depth"], report["rows"]["early exit"]
    assert full["layers"] == {"3": 10} and full["forced"] == 0  # 2 scenes of 5 key frames
    assert early["layers"] == {"2": 6, "3": 4} and early["forced"] == 4  # frames 0 and 3 of each scene
    assert 0.0 <= early["amota"] <= 1.0 and early["decode_ms"]["median"] > 0.0
    assert (tmp_path / "out" / "early_exit" / "results.json").is_file()


def test_tensorrt_builds_and_caches_an_engine_per_layer_graph(
    plain: tuple[Path, Path], tmp_path: Path
) -> None:
    """Host side only: TensorRT is not installed here, so its builder is a stand-in; the per-layer
    TensorRT run itself (TensorRTBackend.decode_layers) has not run."""
    from syncl_ros.inference.engine_cache import EngineKey
    from syncl_ros.inference.tensorrt_backend import GpuIdentity, build_engines

    _, export = plain
    built: list[EngineKey] = []

    def build(onnx_path: Path, key: EngineKey) -> bytes:
        built.append(key)
        return onnx_path.read_bytes()[:64]

    gpu = GpuIdentity("NVIDIA Jetson AGX Orin", "8.7", "10.3.0")
    plain_run = build_engines(export, "fp16", tmp_path, build=build, identity=lambda device: gpu)
    assert set(plain_run) == {"encoder", "decoder"}
    layered = build_engines(export, "fp16", tmp_path, build=build, identity=lambda device: gpu, layers=True)
    layer_names = [f"decoder_layer{k}" for k in (1, 2, 3)]
    assert list(layered) == ["encoder", "decoder", *layer_names]
    assert [k.graph for k in built] == ["encoder", "decoder", *layer_names]  # the first two cached
    manifest = read_manifest(export)
    assert all(k.onnx_sha256 == manifest["graphs"][k.graph]["sha256"] for k in built)


@pytest.mark.slow
def test_offline_tracking_runs_the_exported_graphs_with_early_exit(
    plain: tuple[Path, Path], synth_val_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from syncl_ros.pipeline.offline import track_split

    monkeypatch.setenv("SYNCL_CACHE_DIR", str(tmp_path / "cache"))  # where the checkpoint is exported
    ckpt, _ = plain
    sets = ["tracker.birth_score=0.0", "tracker.update_score=0.0", "tracker.output_score=0.0"]
    sets.append("tracker.early_exit.enabled=true")
    out = tmp_path / "results.json"
    stats = track_split(
        synth_val_root, "v1.0-trainval", "val", ckpt, out, progress=False, overrides=sets,
        backend_name="onnxruntime",
    )  # fmt: skip
    assert stats["samples"] == 10 and stats["boxes"] > 0
    assert len(json.loads(out.read_text())["results"]) == 10
