"""TensorRT backend (TensorRT 10.x Python API): engines built from the exported ONNX, cached on disk.

Building: OnnxParser -> network; with precision fp16 the builder may pick FP16
kernels everywhere except the layers pinned to FP32 below (softmax,
normalization, reductions, unary math such as exp/log/sin/cos, and the sigmoid
activations): their inputs span ranges or need resolution that half precision
loses (attention logits, inverse-sigmoid of reference points, sine position
embeddings, class scores near the decision thresholds).

Running: one execution context per graph; all inputs and outputs live in torch
CUDA tensors whose addresses are bound with set_tensor_address, and
execute_async_v3 runs on torch's current stream, so the encoder's output
buffer feeds the decoder without a copy. Early exit (decode_layers) runs one
engine per decoder layer the same way: each reads the previous layer's output
buffers and layer 1's context buffers in place. That path is written to the
same API but has not run on a TensorRT installation yet.

Engines are cached by engine_cache.EngineCache (GPU, compute capability,
TensorRT version, precision, ONNX sha256); `syncl build-engine` and the
node's build_only mode fill the cache ahead of time via build_engines().
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from syncl_ros.inference.backend import (
    Backend,
    BackendRequest,
    BackendUnavailable,
    ModelInfo,
    default_cache_dir,
    outputs_from_arrays,
)
from syncl_ros.inference.engine_cache import BuildFn, CacheResult, EngineCache, EngineKey
from syncl_ros.inference.export import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    LAYER_CONTEXT,
    LAYER_QUERIES,
    ensure_export,
    is_export_dir,
    layer_graph,
    manifest_experiment,
    read_manifest,
)
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots

LOG = logging.getLogger("syncl_ros.inference")

MIN_TENSORRT_MAJOR = 10
DEFAULT_WORKSPACE_MB = 2048
GRAPHS = ("encoder", "decoder")


class EngineBuildError(BackendUnavailable):
    """TensorRT could not parse the ONNX graph or build an engine from it."""


def require_tensorrt() -> Any:
    """The tensorrt module, or BackendUnavailable saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise BackendUnavailable(
            f"TensorRT is not installed ({err}); install TensorRT {MIN_TENSORRT_MAJOR}.x with its Python "
            "bindings (JetPack 6.1+ on Jetson) or choose another backend"
        ) from err
    version = str(getattr(trt, "__version__", "0"))
    if int(version.split(".")[0]) < MIN_TENSORRT_MAJOR:
        raise BackendUnavailable(
            f"TensorRT {version} found; this backend uses the TensorRT {MIN_TENSORRT_MAJOR}.x API"
        )
    return trt


def require_cuda(device: str) -> Any:
    import torch

    if not device.startswith("cuda"):
        raise BackendUnavailable(f"TensorRT needs a CUDA device, got device {device!r}")
    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA device visible (torch.cuda.is_available() is False)")
    return torch.device(device)


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str
    tensorrt_version: str


def current_identity(device: str) -> GpuIdentity:
    import torch

    trt = require_tensorrt()
    dev = require_cuda(device)
    major, minor = torch.cuda.get_device_capability(dev)
    return GpuIdentity(torch.cuda.get_device_name(dev), f"{major}.{minor}", str(trt.__version__))


def engine_key(graph: str, onnx_sha256: str, precision: str, gpu: GpuIdentity) -> EngineKey:
    return EngineKey(graph, onnx_sha256, precision, gpu.name, gpu.compute_capability, gpu.tensorrt_version)


# -- building --------------------------------------------------------------------------


def _precision_sensitive(layer: Any, trt: Any) -> bool:
    kinds = (trt.LayerType.SOFTMAX, trt.LayerType.NORMALIZATION, trt.LayerType.REDUCE, trt.LayerType.UNARY)
    if layer.type in kinds:
        return True
    # The parser names layers after their ONNX nodes (e.g. "/Sigmoid_3"); activation layers of those
    # kinds are the only ones whose subtype matters here.
    name = layer.name.lower()
    return bool(layer.type == trt.LayerType.ACTIVATION and ("sigmoid" in name or "softplus" in name))


def keep_sensitive_layers_fp32(network: Any, trt: Any) -> int:
    """Pin precision-sensitive float layers to FP32; returns how many were pinned."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not _precision_sensitive(layer, trt) or any(t.dtype != trt.float32 for t in outputs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def build_serialized_engine(
    onnx_path: Path, precision: str, workspace_mb: int = DEFAULT_WORKSPACE_MB
) -> bytes:
    """Parse the ONNX file and build a serialized engine (FP32, or FP16 with FP32 pins)."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        # Prefer (not obey): a pinned layer without an FP32 kernel warns instead of failing the build.
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        LOG.info("%s: %d layers pinned to FP32", onnx_path.name, keep_sensitive_layers_fp32(network, trt))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    return bytes(memoryview(serialized))


def tensorrt_builder(workspace_mb: int = DEFAULT_WORKSPACE_MB) -> BuildFn:
    def build(onnx_path: Path, key: EngineKey) -> bytes:
        return build_serialized_engine(onnx_path, key.precision, workspace_mb)

    return build


def build_engines(
    model: Path,
    precision: str = "fp16",
    cache_dir: Path | None = None,
    device: str = "cuda",
    rebuild: bool = False,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    build: BuildFn | None = None,
    identity: Callable[[str], GpuIdentity] = current_identity,
    layers: bool = False,
) -> dict[str, CacheResult]:
    """Engines for both graphs of `model` (checkpoint or export folder), from the cache or built now;
    with ``layers`` also for the decoder cut after each layer (early exit).

    The node's build_only mode and `syncl build-engine` call this; `build` and
    `identity` can be replaced (tests, or a remote builder).
    """
    gpu = identity(device)  # fails first, before any export work, when TensorRT or CUDA is missing
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = Path(model) if is_export_dir(Path(model)) else ensure_export(Path(model), cache_root)
    manifest = read_manifest(folder)
    cache = EngineCache(cache_root / "engines", build or tensorrt_builder(workspace_mb))
    results = {}
    graphs = [*GRAPHS, *layer_graphs(manifest)] if layers else list(GRAPHS)
    for graph in graphs:
        entry = manifest["graphs"][graph]
        key = engine_key(graph, entry["sha256"], precision, gpu)
        results[graph] = cache.get(folder / entry["file"], key, rebuild=rebuild)
    return results


def layer_graphs(manifest: dict[str, Any]) -> list[str]:
    """Manifest names of the decoder cut after each layer, layer 1 first."""
    return [layer_graph(k) for k in range(1, manifest_experiment(manifest).model.num_layers + 1)]


# -- running ------------------------------------------------------------------------------


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    if dtype not in table:
        raise EngineBuildError(f"unsupported engine tensor type {dtype}")
    return table[dtype]


class _EngineRunner:
    """One deserialized engine, its execution context and a torch CUDA buffer per I/O tensor."""

    def __init__(self, trt: Any, runtime: Any, blob: bytes, device: Any) -> None:
        import torch

        self.engine = runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise EngineBuildError("TensorRT could not deserialize the cached engine")
        self.context = self.engine.create_execution_context()
        self.buffers: dict[str, Any] = {}
        self.bound: dict[str, Any] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            self.buffers[name] = torch.empty(shape, dtype=dtype, device=device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())

    def run(self, stream: Any, bound: dict[str, Any] | None = None) -> None:
        """Enqueue on `stream`; `bound` maps input names to caller-owned tensors used in place."""
        # Held until the next run: the engine reads these tensors after this call returns.
        self.bound = {name: tensor.contiguous() for name, tensor in (bound or {}).items()}
        for name, tensor in self.bound.items():
            expected = self.buffers[name]
            if tuple(tensor.shape) != tuple(expected.shape) or tensor.dtype != expected.dtype:
                raise ValueError(f"{name}: expected {tuple(expected.shape)} {expected.dtype}")
            self.context.set_tensor_address(name, tensor.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self,
        model: Path,
        device: str = "cuda",
        precision: str = "fp16",
        cache_dir: Path | None = None,
        workspace_mb: int = DEFAULT_WORKSPACE_MB,
        layers: bool = False,
    ) -> None:
        self._trt = require_tensorrt()
        self._device = require_cuda(device)
        self._cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
        root = self._cache_root
        self._folder = Path(model) if is_export_dir(Path(model)) else ensure_export(Path(model), root)
        manifest = read_manifest(self._folder)
        self.experiment = manifest_experiment(manifest)
        self.info = ModelInfo.from_config(self.experiment.model, manifest["cameras"])
        self.device, self.precision, self.selection = str(device), precision, []
        self._workspace_mb = workspace_mb
        self._runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
        self._encoder, self._decoder = self._load(list(GRAPHS))
        self._layer_names = layer_graphs(manifest)
        self._layers: list[_EngineRunner] = []  # the decoder cut after each layer, loaded on first use
        if layers:
            self._layers = self._load(self._layer_names)

    def _load(self, graphs: list[str]) -> list[_EngineRunner]:
        """Runners for these graphs (manifest names), in their order; engines built where missing."""
        layers = any(name not in GRAPHS for name in graphs)

        def load(rebuild: bool) -> list[_EngineRunner]:
            engines = build_engines(
                self._folder,
                self.precision,
                self._cache_root,
                self.device,
                rebuild=rebuild,
                workspace_mb=self._workspace_mb,
                layers=layers,
            )
            blobs = [engines[name].path.read_bytes() for name in graphs]
            return [_EngineRunner(self._trt, self._runtime, blob, self._device) for blob in blobs]

        try:
            return load(False)
        except EngineBuildError:
            # A cached engine that passes its checksum but will not load (e.g. a driver update): build anew.
            return load(True)

    def _stream(self) -> Any:
        import torch

        return torch.cuda.current_stream(self._device)

    def encode(self, images: NDArray[np.float32]) -> Any:
        """-> the encoder's features buffer (a torch CUDA tensor), valid until the next encode()."""
        import torch

        self._encoder.buffers["images"].copy_(torch.from_numpy(self.check_images(images))[None])
        self._encoder.run(self._stream())
        return self._encoder.buffers["features"]

    def decode(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> DecoderOutputs:
        import torch

        host = dict(zip(DECODER_INPUTS[1:], self.check_frame(img2lidar, slots, cameras), strict=True))
        for name, value in host.items():
            self._decoder.buffers[name].copy_(torch.from_numpy(value)[None])
        if isinstance(features, np.ndarray):
            features = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self._device)
        self._decoder.run(self._stream(), {"features": features})
        return _host_outputs(self._decoder)

    def decode_layers(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> Iterator[DecoderOutputs]:
        import torch

        if not self._layers:
            self._layers = self._load(self._layer_names)
        first = self._layers[0]
        host = dict(zip(DECODER_INPUTS[1:], self.check_frame(img2lidar, slots, cameras), strict=True))
        for name, value in host.items():
            first.buffers[name].copy_(torch.from_numpy(value)[None])
        if isinstance(features, np.ndarray):
            features = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self._device)
        first.run(self._stream(), {"features": features})
        yield _host_outputs(first)
        context = {name: first.buffers[name] for name in LAYER_CONTEXT if name in first.buffers}
        previous = first
        for runner in self._layers[1:]:
            queries = (previous.buffers["embeddings"], previous.buffers["refs"])
            runner.run(self._stream(), {**context, **dict(zip(LAYER_QUERIES, queries, strict=True))})
            yield _host_outputs(runner)
            previous = runner

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self._device)


def _host_outputs(runner: _EngineRunner) -> DecoderOutputs:
    """A decoder graph's outputs (its engine's buffers) copied to the host."""
    return outputs_from_arrays(*(runner.buffers[n].float().cpu().numpy() for n in DECODER_OUTPUTS))


def open_tensorrt_backend(req: BackendRequest) -> TensorRTBackend:
    """create_backend's factory."""
    require_tensorrt()
    require_cuda(req.device)
    workspace = int(req.options.get("workspace_mb", DEFAULT_WORKSPACE_MB))
    layers = bool(req.options.get("layers", False))
    return TensorRTBackend(req.model, req.device, req.precision, req.cache_dir, workspace, layers)
