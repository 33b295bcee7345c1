"""onnxruntime backend: runs the exported encoder and decoder graphs (CPU, or CUDA where available).

Sessions use every graph optimization (constant folding, Conv+ReLU, Gemm and
layer-norm fusions) and one intra-op thread per usable core, without idle
spinning (see session_options). Features stay an OrtValue between encode() and
decode() (IO binding), so on the CUDA execution provider they never leave the
GPU; so do the per-layer graphs' tensors between layers (decode_layers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from syncl_ros.inference.backend import (
    Backend,
    BackendRequest,
    BackendUnavailable,
    ModelInfo,
    outputs_from_arrays,
)
from syncl_ros.inference.manifest import (
    DECODER_FILE,
    DECODER_OUTPUTS,
    ENCODER_FILE,
    LAYER_QUERIES,
    is_export_dir,
    layer_graph,
    manifest_experiment,
    read_manifest,
)
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots

LOG = logging.getLogger("syncl_ros.inference")


def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailable(f"onnxruntime is not installed ({err})") from err
    return onnxruntime


def session_options(threads: int | None = None) -> Any:
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or usable_cores()
    opts.inter_op_num_threads = 1  # the graphs are chains; parallelism lives inside the ops
    # Each session owns a thread pool whose idle workers spin by default. The encoder's and the
    # decoder's sessions run alternately, so a spinning pool steals the cores the other one needs
    # (measured here: frame time 84 ms with spinning, 40-47 ms without); it also keeps a
    # 2 Hz node from burning CPU between frames.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only; the package logs what matters
    return opts


def providers_for(device: str) -> list[Any]:
    """Execution providers for `device`: CUDA first when asked for and present, CPU always last."""
    ort = _ort()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(device.split(":")[1]) if ":" in device else 0
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        LOG.warning("onnxruntime has no CUDAExecutionProvider here (CPU-only build); running on the CPU")
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self, export_dir: Path, device: str = "cpu", threads: int | None = None, layers: bool = False
    ) -> None:
        ort = _ort()
        folder = Path(export_dir)
        manifest = read_manifest(folder)
        self._manifest = manifest
        self.experiment = manifest_experiment(manifest)
        self.info = ModelInfo.from_config(self.experiment.model, manifest["cameras"])
        self.export_dir = folder
        self.precision = "fp32"
        self.selection = []
        opts, providers = session_options(threads), providers_for(device)
        self._session: Callable[[str], Any] = lambda file: ort.InferenceSession(
            str(folder / file), opts, providers=providers
        )
        self._encoder = self._session(ENCODER_FILE)
        self._decoder = self._session(DECODER_FILE)
        self._layers: list[Any] = []  # sessions of the decoder cut after each layer, made on first use
        if layers:
            self._layer_sessions()
        # The CUDA provider can fail to load (missing CUDA/cuDNN libraries) and onnxruntime then
        # quietly runs on the CPU: report what the session really uses.
        on_gpu = "CUDAExecutionProvider" in self._encoder.get_providers()
        self._device_type = "cuda" if on_gpu else "cpu"
        self._device_id = int(device.split(":")[1]) if on_gpu and ":" in device else 0
        self.device = f"cuda:{self._device_id}" if on_gpu else "cpu"

    def encode(self, images: NDArray[np.float32]) -> Any:
        """(N, 3, H, W) -> features as an onnxruntime OrtValue on the session's device."""
        binding = self._encoder.io_binding()
        binding.bind_cpu_input("images", self.check_images(images)[None])
        binding.bind_output("features", self._device_type, self._device_id)
        self._encoder.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def decode(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> DecoderOutputs:
        binding = self._decoder.io_binding()
        self._bind_frame(binding, features, img2lidar, slots, cameras)
        for name in DECODER_OUTPUTS:
            binding.bind_output(name, "cpu")  # fresh host arrays each frame: results never alias
        self._decoder.run_with_iobinding(binding)
        scores, codes, refs, embeddings = binding.copy_outputs_to_cpu()
        return outputs_from_arrays(scores, codes, refs, embeddings)

    def decode_layers(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> Iterator[DecoderOutputs]:
        sessions = self._layer_sessions()
        binding = sessions[0].io_binding()
        self._bind_frame(binding, features, img2lidar, slots, cameras)
        values = self._run_layer(sessions[0], binding)  # layer 1's outputs and the frame's context
        yield _host_outputs(values)
        for session in sessions[1:]:
            binding = session.io_binding()
            queries = dict(zip(LAYER_QUERIES, (values["embeddings"], values["refs"]), strict=True))
            for name in (i.name for i in session.get_inputs()):
                binding.bind_ortvalue_input(name, queries[name] if name in queries else values[name])
            values = {**values, **self._run_layer(session, binding)}
            yield _host_outputs(values)

    def _layer_sessions(self) -> list[Any]:
        if not self._layers:
            graphs = self._manifest["graphs"]
            names = [layer_graph(k) for k in range(1, self.info.num_layers + 1)]
            self._layers = [self._session(graphs[name]["file"]) for name in names]
        return self._layers

    def _run_layer(self, session: Any, binding: Any) -> dict[str, Any]:
        """Run a bound layer graph; its outputs by name, as OrtValues on the session's device."""
        names = [o.name for o in session.get_outputs()]
        for name in names:
            binding.bind_output(name, self._device_type, self._device_id)
        session.run_with_iobinding(binding)
        return dict(zip(names, binding.get_outputs(), strict=True))

    def _bind_frame(
        self, binding: Any, features: Any, img2lidar: NDArray[np.float32], slots: TrackSlots, cameras: Any
    ) -> None:
        """Bind the decoder graph's inputs (decoder.onnx and layer 1 take the same)."""
        i2l, emb, ref, mask, used = self.check_frame(img2lidar, slots, cameras)
        if isinstance(features, np.ndarray):
            binding.bind_cpu_input("features", np.ascontiguousarray(features, dtype=np.float32))
        else:
            binding.bind_ortvalue_input("features", features)
        for name, value in (
            ("img2lidar", i2l),
            ("track_embeddings", emb),
            ("track_refs", ref),
            ("track_mask", mask),
            ("camera_mask", used),
        ):
            binding.bind_cpu_input(name, value[None])


def _host_outputs(values: dict[str, Any]) -> DecoderOutputs:
    """A layer's outputs (OrtValues by name) as host arrays: copies, so results never alias."""
    scores, codes, refs, embeddings = (np.array(values[name].numpy()) for name in DECODER_OUTPUTS)
    return outputs_from_arrays(scores, codes, refs, embeddings)


def open_onnxruntime_backend(req: BackendRequest) -> OnnxRuntimeBackend:
    """create_backend's factory: an export folder, or a checkpoint exported into the cache first."""
    _ort()
    if req.precision == "fp16":
        LOG.info("onnxruntime runs the FP32 graphs; precision fp16 applies to tensorrt and torch on CUDA")
    folder = Path(req.model)
    if not is_export_dir(folder):
        from syncl_ros.inference.export import ensure_export  # loads torch: only to export a checkpoint

        folder = ensure_export(folder, req.cache_dir)
    threads = req.options.get("threads")
    layers = bool(req.options.get("layers", False))
    return OnnxRuntimeBackend(folder, req.device, int(threads) if threads else None, layers)
