"""PyTorch backend: runs the tracker network on CPU or CUDA.

On CUDA two speed options exist: FP16 autocast (matmuls and convolutions in
half precision; softmax, layer norm and the box decoding stay in FP32 under
autocast's rules) and CUDA graphs (each stage captured once and replayed, which
removes the per-kernel launch overhead that dominates a small decoder).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from syncl_ros.experiment.checkpoint import load_model
from syncl_ros.inference.backend import Backend, BackendRequest, BackendUnavailable, ModelInfo
from syncl_ros.inference.export import is_export_dir
from syncl_ros.inference.layer_graphs import FirstLayerGraph, NextLayerGraph
from syncl_ros.model.box_coder import BoxCoder
from syncl_ros.model.network import DecoderTensors, TrackerNet
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots

LOG = logging.getLogger("syncl_ros.inference")

LastLayer = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Stage = Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]


def to_decoder_outputs(out: DecoderTensors, net: TrackerNet) -> DecoderOutputs:
    """Last decoder layer of one frame (batch 1) -> host-side outputs for the runtime tracker."""
    rows = out.num_det + net.cfg.num_slots
    return _host_outputs(
        (
            out.logits[-1, :, :rows].float().sigmoid(),
            out.codes[-1, :, :rows],
            out.refs[-1, :, :rows],
            out.embeddings[:, :rows],
        ),
        net,
    )


def _host_outputs(last: LastLayer, net: TrackerNet) -> DecoderOutputs:
    scores, codes, refs, embeddings = (t[0].float() for t in last)
    return DecoderOutputs(
        scores=scores.cpu().numpy(),
        boxes=net.coder.to_boxes(codes).cpu().numpy().astype(np.float64),
        refs=refs.cpu().numpy(),
        embeddings=embeddings.cpu().numpy(),
    )


class _StaticBoxCoder(BoxCoder):
    """BoxCoder whose range tensors are made once per device and dtype.

    BoxCoder builds them from Python floats on every call: a host-to-device copy
    with a stream sync, which CUDA graph capture forbids. The warm-up runs before
    capture fill this cache, so the captured graph only reads cached tensors.
    """

    def __init__(self, pc_range: Sequence[float]) -> None:
        super().__init__(pc_range)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _lo_span(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = super()._lo_span(like)
        return self._cache[key]


class _GraphedCall:
    """fn(*inputs) captured once into a CUDA graph; a call copies new inputs into the captured
    buffers and replays. Outputs are the captured buffers: valid until the next call."""

    def __init__(self, fn: Stage, example: list[torch.Tensor]) -> None:
        self.inputs = [t.clone() for t in example]
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # lets cuDNN/cuBLAS pick and allocate their workspaces before capture
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn(*self.inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        for dst, src in zip(self.inputs, inputs, strict=True):
            dst.copy_(src, non_blocking=True)
        self.graph.replay()
        return self.outputs


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self, net: TrackerNet, device: str = "cpu", precision: str = "fp32", cuda_graphs: bool = False
    ) -> None:
        self.device = str(device)
        self._device = torch.device(device)
        on_cuda = self._device.type == "cuda"
        if (precision == "fp16" or cuda_graphs) and not on_cuda:
            raise BackendUnavailable("FP16 autocast and CUDA graphs need a CUDA device")
        self.net = net.to(self._device).eval()
        if cuda_graphs:
            self.net.coder = _StaticBoxCoder(net.coder.pc_range)
        self.precision = precision
        self.cuda_graphs = cuda_graphs
        self.info = ModelInfo.from_config(net.cfg)
        self.selection = []
        self._graphs: dict[str, _GraphedCall] = {}
        # The decoder cut after each layer (early exit): the modules the per-layer ONNX graphs export.
        self._layers: list[Stage] = [FirstLayerGraph(self.net)]
        self._layers += [NextLayerGraph(self.net, k) for k in range(1, net.cfg.num_layers)]

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.precision == "fp16":
                # No autocast weight cache: a CUDA graph capture must not hold cached casts.
                with torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
                    yield
            else:
                yield

    def _tensor(self, a: ArrayLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))[None].to(self._device, dtype, non_blocking=True)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.encode(images)

    def _decode(
        self,
        feats: torch.Tensor,
        img2lidar: torch.Tensor,
        emb: torch.Tensor,
        ref: torch.Tensor,
        mask: torch.Tensor,
        cameras: torch.Tensor,
    ) -> LastLayer:
        out = self.net.decode(feats, img2lidar, emb, ref, mask, camera_mask=cameras)
        rows = out.num_det + self.net.cfg.num_slots
        return (
            out.logits[-1, :, :rows].float().sigmoid(),
            out.codes[-1, :, :rows].float(),
            out.refs[-1, :, :rows].float(),
            out.embeddings[:, :rows].float(),
        )

    def _run(self, stage: str, fn: Stage, *inputs: torch.Tensor) -> object:
        if not self.cuda_graphs:
            return fn(*inputs)
        if stage not in self._graphs:
            self._graphs[stage] = _GraphedCall(fn, list(inputs))
        return self._graphs[stage](*inputs)

    def encode(self, images: NDArray[np.float32]) -> torch.Tensor:
        """(N, 3, H, W) float32 normalized images of one frame -> features (1, N, C, h, w) on the device."""
        x = self._tensor(self.check_images(images))
        with self._mode():
            out = self._run("encode", self._encode, x)
        assert isinstance(out, torch.Tensor)
        return out

    def decode(
        self,
        feats: torch.Tensor,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> DecoderOutputs:
        i2l, emb, ref, mask, used = (self._tensor(a) for a in self.check_frame(img2lidar, slots, cameras))
        with self._mode():
            last = self._run("decode", self._decode, feats, i2l, emb, ref, mask, used)
        assert isinstance(last, tuple)
        return _host_outputs(last, self.net)

    def decode_layers(
        self,
        feats: torch.Tensor,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> Iterator[DecoderOutputs]:
        frame = [self._tensor(a) for a in self.check_frame(img2lidar, slots, cameras)]
        inputs = [feats, *frame]
        context: tuple[torch.Tensor, ...] = ()
        for k, layer in enumerate(self._layers):
            with self._mode():  # entered per layer: the caller's code between layers runs outside it
                out = self._run(f"decode_layer{k + 1}", layer, *inputs, *context)
            assert isinstance(out, tuple)
            outputs, context = out[:4], context or out[4:]  # layer 1 also gives the frame's context
            inputs = [outputs[3], outputs[2]]  # the next layer's queries: embeddings, refs
            yield _host_outputs((outputs[0], outputs[1], outputs[2], outputs[3]), self.net)

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)


def open_torch_backend(req: BackendRequest) -> TorchBackend:
    """create_backend's factory: a checkpoint on CPU or CUDA."""
    if is_export_dir(Path(req.model)):
        raise BackendUnavailable(f"the torch backend needs a checkpoint, {req.model} is an export folder")
    device = req.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        # Like onnxruntime without its CUDA provider: slower on the CPU beats not tracking at all.
        LOG.warning("PyTorch sees no CUDA device; the torch backend runs on the CPU")
        device = "cpu"
    on_cuda = device.startswith("cuda")
    precision = req.precision if on_cuda else "fp32"  # FP16 autocast is a GPU option
    net, _, _ = load_model(req.model, "cpu")
    cuda_graphs = bool(req.options.get("cuda_graphs", False)) and on_cuda
    return TorchBackend(net, device, precision, cuda_graphs)
