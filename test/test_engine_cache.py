"""TensorRT engine cache and build path, host side: keys, invalidation, atomic writes, build_engines.

TensorRT cannot run on these machines, so the engine-building step is a test
double (a function returning bytes); everything around it is the real code.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from training_fixtures import tiny_experiment

from syncl_ros.experiment.checkpoint import save_checkpoint
from syncl_ros.inference import build_engine_cli
from syncl_ros.inference.backend import BackendUnavailable
from syncl_ros.inference.engine_cache import EngineCache, EngineKey
from syncl_ros.inference.export import read_manifest
from syncl_ros.inference.tensorrt_backend import (
    GpuIdentity,
    build_engines,
    engine_key,
    keep_sensitive_layers_fp32,
)
from syncl_ros.model.network import TrackerNet

KEY = EngineKey("decoder", "ab" * 32, "fp16", "NVIDIA Jetson AGX Orin", "8.7", "10.3.0")
ORIN = GpuIdentity("NVIDIA Jetson AGX Orin", "8.7", "10.3.0")


class FakeBuilder:
    """Stands in for TensorRT's builder: records calls, returns bytes derived from the key."""

    def __init__(self) -> None:
        self.calls: list[EngineKey] = []

    def __call__(self, onnx_path: Path, key: EngineKey) -> bytes:
        assert onnx_path.is_file()
        self.calls.append(key)
        return f"engine {key.digest()} from {onnx_path.name}".encode() * 10


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "decoder.onnx"
    path.write_bytes(b"not really onnx")
    return path


def test_key_digest_covers_every_field() -> None:
    digests = {KEY.digest()}
    for field, value in [
        ("graph", "encoder"),
        ("onnx_sha256", "cd" * 32),
        ("precision", "fp32"),
        ("gpu_name", "NVIDIA H100 80GB HBM3"),
        ("compute_capability", "9.0"),
        ("tensorrt_version", "10.3.1"),
    ]:
        digests.add(dataclasses.replace(KEY, **{field: value}).digest())
    assert len(digests) == 7
    assert KEY.digest() == dataclasses.replace(KEY).digest()  # stable


def test_miss_builds_once_then_hits(tmp_path: Path, onnx_file: Path) -> None:
    build = FakeBuilder()
    cache = EngineCache(tmp_path / "engines", build)
    first = cache.get(onnx_file, KEY)
    assert first.built and first.reason == "not cached" and len(build.calls) == 1
    second = cache.get(onnx_file, KEY)
    assert not second.built and second.path == first.path and len(build.calls) == 1
    meta = json.loads(cache.sidecar_path(KEY).read_text())
    assert meta["key"] == KEY.as_dict()
    assert meta["engine_sha256"] == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_each_key_change_is_its_own_entry(tmp_path: Path, onnx_file: Path) -> None:
    build = FakeBuilder()
    cache = EngineCache(tmp_path, build)
    other_gpu = dataclasses.replace(KEY, gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    for key in (
        KEY,
        dataclasses.replace(KEY, precision="fp32"),
        other_gpu,
        dataclasses.replace(KEY, tensorrt_version="10.7.0"),
    ):
        assert cache.get(onnx_file, key).built
    assert len(build.calls) == 4 and len(list(tmp_path.glob("*.engine"))) == 4
    assert not cache.get(onnx_file, KEY).built


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c: c.engine_path(KEY).write_bytes(c.engine_path(KEY).read_bytes()[:-3]), "corrupt"),
        (lambda c: c.engine_path(KEY).write_bytes(b"X" + c.engine_path(KEY).read_bytes()[1:]), "corrupt"),
        (lambda c: c.sidecar_path(KEY).write_text("{not json"), "unreadable"),
        (
            lambda c: c.sidecar_path(KEY).write_text(
                json.dumps({**json.loads(c.sidecar_path(KEY).read_text()), "key": {"gpu_name": "other"}})
            ),
            "does not match",
        ),
        (lambda c: c.sidecar_path(KEY).unlink(), "not cached"),
        (lambda c: c.engine_path(KEY).unlink(), "not cached"),
    ],
)
def test_damaged_or_mismatched_entries_are_rebuilt(
    tmp_path: Path, onnx_file: Path, damage: Callable[[EngineCache], object], reason: str
) -> None:
    build = FakeBuilder()
    cache = EngineCache(tmp_path, build)
    good = cache.get(onnx_file, KEY).path.read_bytes()
    damage(cache)
    assert reason in (cache.check(KEY) or "")
    again = cache.get(onnx_file, KEY)
    assert again.built and reason in again.reason and len(build.calls) == 2
    assert again.path.read_bytes() == good and cache.check(KEY) is None


def test_failed_build_leaves_no_partial_files(tmp_path: Path, onnx_file: Path) -> None:
    cache = EngineCache(tmp_path, FakeBuilder())
    cache.get(onnx_file, KEY)
    before = sorted(p.name for p in tmp_path.iterdir())

    def broken(onnx_path: Path, key: EngineKey) -> bytes:
        raise RuntimeError("builder crashed")

    failing = EngineCache(tmp_path, broken)
    with pytest.raises(RuntimeError, match="crashed"):
        failing.get(onnx_file, dataclasses.replace(KEY, precision="fp32"))
    with pytest.raises(RuntimeError, match="crashed"):
        failing.get(onnx_file, KEY, rebuild=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp files, old entry intact
    assert cache.check(KEY) is None


def test_store_replaces_atomically(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path, FakeBuilder())
    cache.store(KEY, b"old engine")
    cache.store(KEY, b"new engine")
    assert cache.engine_path(KEY).read_bytes() == b"new engine" and cache.check(KEY) is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    exp = tiny_experiment()
    return save_checkpoint(tmp_path_factory.mktemp("c") / "m.pt", TrackerNet(exp.model).eval(), exp, {})


def test_build_engines_exports_then_caches_both_graphs(ckpt: Path, tmp_path: Path) -> None:
    build = FakeBuilder()
    results = build_engines(ckpt, "fp16", tmp_path, build=build, identity=lambda device: ORIN)
    assert set(results) == {"encoder", "decoder"} and all(r.built for r in results.values())
    export = next((tmp_path / "onnx").iterdir())
    manifest = read_manifest(export)
    assert {k.graph: k.onnx_sha256 for k in build.calls} == {
        g: manifest["graphs"][g]["sha256"] for g in ("encoder", "decoder")
    }
    assert all(k.gpu_name == ORIN.name and k.precision == "fp16" for k in build.calls)
    again = build_engines(export, "fp16", tmp_path, build=build, identity=lambda device: ORIN)
    assert not any(r.built for r in again.values()) and len(build.calls) == 2
    thor = GpuIdentity("NVIDIA Thor", "11.0", "10.13.0")
    other = build_engines(ckpt, "fp16", tmp_path, build=build, identity=lambda device: thor)
    assert all(r.built for r in other.values()) and len(build.calls) == 4
    forced = build_engines(ckpt, "fp16", tmp_path, rebuild=True, build=build, identity=lambda device: ORIN)
    assert all(r.built and r.reason == "rebuild requested" for r in forced.values())


def test_engine_key_from_identity() -> None:
    key = engine_key("encoder", "ff" * 32, "fp32", ORIN)
    assert (key.gpu_name, key.compute_capability, key.tensorrt_version) == (
        "NVIDIA Jetson AGX Orin",
        "8.7",
        "10.3.0",
    )


def test_without_tensorrt_building_is_a_clear_error(ckpt: Path, tmp_path: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
            build_engines(ckpt, "fp16", tmp_path)
        assert not (tmp_path / "onnx").exists()  # failed before any export work
    else:  # pragma: no cover - machines with TensorRT
        pytest.skip("TensorRT is installed here")


def test_build_engine_cli(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    build_engine_cli.configure_parser(parser)
    EngineCache(tmp_path / "engines", FakeBuilder()).store(KEY, b"engine bytes")
    assert build_engine_cli.main(parser.parse_args(["--list", "--cache-dir", str(tmp_path)])) == 0
    assert "NVIDIA Jetson AGX Orin (sm 8.7) TensorRT 10.3.0" in capsys.readouterr().out
    code = build_engine_cli.main(parser.parse_args(["--model", str(ckpt), "--cache-dir", str(tmp_path)]))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert code == 1 and "TensorRT" in capsys.readouterr().err


# -- which layers stay FP32 under --precision fp16 (TensorRT objects replaced by plain stand-ins) --

LayerType = SimpleNamespace(
    SOFTMAX="softmax",
    NORMALIZATION="norm",
    REDUCE="reduce",
    UNARY="unary",
    ACTIVATION="act",
    MATRIX_MULTIPLY="mm",
)
FAKE_TRT = SimpleNamespace(LayerType=LayerType, float32="f32", float16="f16", int64="i64")


class FakeLayer:
    def __init__(self, name: str, kind: str, out_dtype: str = "f32") -> None:
        self.name, self.type, self.precision = name, kind, None
        self.outputs = [SimpleNamespace(dtype=out_dtype)]
        self.output_types: dict[int, str] = {}

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, i: int) -> SimpleNamespace:
        return self.outputs[i]

    def set_output_type(self, i: int, dtype: str) -> None:
        self.output_types[i] = dtype


def test_precision_sensitive_layers_are_pinned_to_fp32() -> None:
    layers = [
        FakeLayer("/layers.0/self_attn/Softmax", "softmax"),
        FakeLayer("/layers.0/norm1/LayerNormalization", "norm"),
        FakeLayer("/Log_2", "unary"),
        FakeLayer("/Sigmoid_3", "act"),
        FakeLayer("/layers.0/ffn/Relu", "act"),
        FakeLayer("/layers.0/MatMul", "mm"),
        FakeLayer("/ReduceMax_int", "reduce", out_dtype="i64"),
    ]
    network = SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    assert keep_sensitive_layers_fp32(network, FAKE_TRT) == 4
    pinned = [layer.name for layer in layers if layer.precision == "f32"]
    assert pinned == [
        "/layers.0/self_attn/Softmax",
        "/layers.0/norm1/LayerNormalization",
        "/Log_2",
        "/Sigmoid_3",
    ]
    assert all(layer.output_types == {0: "f32"} for layer in layers[:4])
