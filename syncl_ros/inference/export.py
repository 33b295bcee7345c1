"""ONNX export of the tracker: an image encoder graph and a decoder graph, static shapes.

`encoder.onnx`: images (1, N, 3, H, W) -> features (1, N, C, h, w).
`decoder.onnx`: features, img2lidar (1, N, 4, 4), the S track slots (embeddings
(1, S, C), normalized refs (1, S, 3), validity mask (1, S) as float 0/1) ->
scores (1, M, classes) after the sigmoid, metric box codes (1, M, 10), refined
refs (1, M, 3) and output query features (1, M, C) of the last decoder layer,
with M = detection queries + S slots.
`decoder_layer1.onnx` ... `decoder_layer<L>.onnx`: the same decoder cut after each
layer, for early exit (layer_graphs.py); decoder.onnx stays the one graph of a full-depth run.

What stays on the host, and why:
- the img2lidar inverse (no matrix inverse in the graph; model/inputs.py);
- codes -> boxes, because the yaw needs atan2 and ONNX has no Atan2 operator
  (see `boxes_from_codes`).

The export is deterministic: the same checkpoint gives byte-identical ONNX
files (fixed example inputs, no timestamps or paths in the files or in the
manifest), so the ONNX sha256 can key the TensorRT engine cache.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from syncl_ros.atomic import atomic_open, remove_stale_partials, replace_dir, temp_dir, write_json_atomic
from syncl_ros.experiment import Experiment
from syncl_ros.experiment.checkpoint import load_model
from syncl_ros.inference.layer_graphs import FirstLayerGraph, NextLayerGraph
from syncl_ros.inference.manifest import (  # re-exported: the export API in one place
    DECODER_FILE,
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    DEFAULT_OPSET,
    ENCODER_FILE,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    FORMAT,
    LAYER_CONTEXT,
    LAYER_QUERIES,
    MANIFEST,
    NUM_CAMERAS,
    boxes_from_codes,
    is_export_dir,
    layer_graph,
    manifest_experiment,
    num_detections,
    read_manifest,
    sha256_bytes,
    sha256_file,
)
from syncl_ros.inference.onnx_graph import fold_static_graph
from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.network import TrackerNet

__all__ = [
    "DECODER_FILE",
    "DECODER_INPUTS",
    "DECODER_OUTPUTS",
    "DEFAULT_OPSET",
    "ENCODER_FILE",
    "ENCODER_INPUTS",
    "ENCODER_OUTPUTS",
    "FORMAT",
    "LAYER_CONTEXT",
    "LAYER_QUERIES",
    "MANIFEST",
    "NUM_CAMERAS",
    "DecoderGraph",
    "EncoderGraph",
    "ExportResult",
    "boxes_from_codes",
    "ensure_export",
    "export_model",
    "is_export_dir",
    "layer_graph",
    "manifest_experiment",
    "num_detections",
    "read_manifest",
    "sha256_bytes",
    "sha256_file",
]


class EncoderGraph(nn.Module):
    """images (1, N, 3, H, W) -> features (1, N, C, h, w)."""

    def __init__(self, net: TrackerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.encode(images)


class DecoderGraph(nn.Module):
    """One frame's decoding; only the last decoder layer's predictions leave the graph."""

    def __init__(self, net: TrackerNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        features: torch.Tensor,
        img2lidar: torch.Tensor,
        track_embeddings: torch.Tensor,
        track_refs: torch.Tensor,
        track_mask: torch.Tensor,
        camera_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net.decode(
            features, img2lidar, track_embeddings, track_refs, track_mask, camera_mask=camera_mask
        )
        return out.logits[-1].sigmoid(), out.codes[-1], out.refs[-1], out.embeddings


# -- shapes -------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


Specs = tuple[list[TensorSpec], list[TensorSpec]]  # a graph's inputs and outputs


def feature_shape(cfg: ModelConfig, cameras: int = NUM_CAMERAS) -> tuple[int, ...]:
    """The encoder output: the image features, then the fine center depth's channel if any."""
    h, w = cfg.input.height // STRIDE, cfg.input.width // STRIDE
    return (1, cameras, cfg.embed_dim + int(cfg.fine_center_depth), h, w)


def encoder_specs(cfg: ModelConfig) -> Specs:
    images = TensorSpec("images", (1, NUM_CAMERAS, 3, cfg.input.height, cfg.input.width), "float32")
    return [images], [TensorSpec("features", feature_shape(cfg), "float32")]


def decoder_specs(cfg: ModelConfig) -> Specs:
    s, c, m = cfg.num_slots, cfg.embed_dim, num_detections(cfg) + cfg.num_slots
    inputs = [
        TensorSpec("features", feature_shape(cfg), "float32"),
        TensorSpec("img2lidar", (1, NUM_CAMERAS, 4, 4), "float32"),
        TensorSpec("track_embeddings", (1, s, c), "float32"),
        TensorSpec("track_refs", (1, s, 3), "float32"),
        TensorSpec("track_mask", (1, s), "float32"),
        TensorSpec("camera_mask", (1, NUM_CAMERAS), "float32"),  # 1: the frame holds that image
    ]
    outputs = [
        TensorSpec("scores", (1, m, cfg.num_classes), "float32"),
        TensorSpec("codes", (1, m, 10), "float32"),
        TensorSpec("refs", (1, m, 3), "float32"),
        TensorSpec("embeddings", (1, m, c), "float32"),
    ]
    return inputs, outputs


def layer_context_specs(cfg: ModelConfig) -> list[TensorSpec]:
    """What layer 1's graph hands every further layer: fixed for the frame (LAYER_CONTEXT)."""
    _, n, _, h, w = feature_shape(cfg)
    c = cfg.embed_dim
    tokens, m = n * h * w, num_detections(cfg) + cfg.num_slots
    bias_rows = m if cfg.track_attention == "asymmetric" else 1
    shapes: list[tuple[int, ...]] = [(1, tokens, c), (1, tokens, c), (1, bias_rows, m), (1, 1, tokens)]
    if cfg.hides_claimed_seeds:
        shapes.append((1, m))
    return [TensorSpec(name, shape, "float32") for name, shape in zip(LAYER_CONTEXT, shapes, strict=False)]


def first_layer_specs(cfg: ModelConfig) -> Specs:
    inputs, outputs = decoder_specs(cfg)
    return inputs, outputs + layer_context_specs(cfg)


def next_layer_specs(cfg: ModelConfig) -> Specs:
    _, outputs = decoder_specs(cfg)
    m = num_detections(cfg) + cfg.num_slots
    features, refs = LAYER_QUERIES
    queries = [TensorSpec(features, (1, m, cfg.embed_dim), "float32"), TensorSpec(refs, (1, m, 3), "float32")]
    return queries + layer_context_specs(cfg), outputs


def all_graphs(net: TrackerNet) -> list[tuple[str, str, nn.Module, Specs]]:
    """(manifest name, file, module, specs) of every exported graph: the encoder, the decoder, and
    the decoder cut after each layer, layer 1 first."""
    cfg = net.cfg
    graphs: list[tuple[str, str, nn.Module, Specs]] = [
        ("encoder", ENCODER_FILE, EncoderGraph(net), encoder_specs(cfg)),
        ("decoder", DECODER_FILE, DecoderGraph(net), decoder_specs(cfg)),
        (layer_graph(1), f"{layer_graph(1)}.onnx", FirstLayerGraph(net), first_layer_specs(cfg)),
    ]
    for k in range(1, cfg.num_layers):
        name = layer_graph(k + 1)
        graphs.append((name, f"{name}.onnx", NextLayerGraph(net, k), next_layer_specs(cfg)))
    return graphs


def example_inputs(specs: list[TensorSpec]) -> tuple[torch.Tensor, ...]:
    """Fixed, seeded tensors for tracing; values never reach the graph, only shapes and dtypes."""
    gen = torch.Generator().manual_seed(0)
    tensors = []
    for spec in specs:
        t = torch.rand(spec.shape, generator=gen, dtype=torch.float32)
        if spec.name == "img2lidar":
            t = torch.eye(4).expand(spec.shape).contiguous()
        tensors.append(t)
    return tuple(tensors)


# -- export ---------------------------------------------------------------------------


def export_graph(module: nn.Module, specs: Specs, opset: int) -> bytes:
    """Trace `module` to ONNX, fold the static shape arithmetic, check it; returns the serialized model."""
    inputs, outputs = specs
    torch.manual_seed(0)
    traced = io.BytesIO()  # in memory: a killed export leaves no temp folder behind
    with warnings.catch_warnings():
        # The legacy exporter is deprecated but is the one that gives a plain, TensorRT-parseable
        # graph here; the tracer warns about constant tensors made from config values, as intended.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            example_inputs(inputs),
            traced,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            input_names=[s.name for s in inputs],
            output_names=[s.name for s in outputs],
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = fold_static_graph(onnx.load_model_from_string(traced.getvalue()))
    model.doc_string = ""
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: dict[str, Any]

    @property
    def encoder(self) -> Path:
        return self.folder / ENCODER_FILE

    @property
    def decoder(self) -> Path:
        return self.folder / DECODER_FILE

    @property
    def layers(self) -> list[Path]:
        """The decoder cut after each layer (early exit), layer 1 first."""
        graphs = self.manifest["graphs"]
        count = self.manifest["experiment"]["model"]["num_layers"]
        return [self.folder / graphs[layer_graph(k)]["file"] for k in range(1, count + 1)]


def _graph_entry(file: str, data: bytes, specs: Specs) -> dict[str, Any]:
    return {
        "file": file,
        "sha256": sha256_bytes(data),
        "inputs": [s.to_dict() for s in specs[0]],
        "outputs": [s.to_dict() for s in specs[1]],
    }


def build_manifest(
    experiment: Experiment, checkpoint_sha256: str, opset: int, graphs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    cfg = experiment.model
    return {
        "format": FORMAT,
        "opset": opset,
        "source_checkpoint_sha256": checkpoint_sha256,
        "experiment": experiment.to_dict(),
        "cameras": NUM_CAMERAS,
        "input_size": [cfg.input.height, cfg.input.width],
        "num_det": num_detections(cfg),
        "num_slots": cfg.num_slots,
        "embed_dim": cfg.embed_dim,
        "num_classes": cfg.num_classes,
        "host_steps": {
            "img2lidar": "inverse of lidar2img, computed on the host (syncl_ros.model.inputs)",
            "boxes": "codes -> boxes on the host: yaw = atan2(sin, cos), size = exp(log size)",
        },
        "exporter": {"torch": torch.__version__.split("+")[0], "onnx": onnx.__version__},
        "graphs": graphs,
    }


def export_model(checkpoint: Path, out: Path, opset: int = DEFAULT_OPSET) -> ExportResult:
    """Checkpoint -> encoder.onnx, decoder.onnx, the decoder_layer<k>.onnx and export.json in `out`
    (each written atomically)."""
    checkpoint = Path(checkpoint)
    net, experiment, _ = load_model(checkpoint, "cpu")
    files = {name: (file, export_graph(m, specs, opset), specs) for name, file, m, specs in all_graphs(net)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    # The manifest marks a finished export: it goes first and comes back last, so a folder
    # that a kill left with new graphs beside an old manifest is never taken for an export.
    (out / MANIFEST).unlink(missing_ok=True)
    for file, data, _ in files.values():
        with atomic_open(out / file, "wb") as f:
            f.write(data)
    graphs = {name: _graph_entry(file, data, specs) for name, (file, data, specs) in files.items()}
    manifest = build_manifest(experiment, sha256_file(checkpoint), opset, graphs)
    # The manifest goes last: a folder with a manifest is a finished export.
    write_json_atomic(out / MANIFEST, manifest, indent=2)
    return ExportResult(out, json.loads(json.dumps(manifest)))  # as read back: tuples become lists


def ensure_export(checkpoint: Path, cache_dir: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export folder for `checkpoint` under cache_dir/onnx, exported on first use and reused after.

    Keyed by the checkpoint's sha256 and the opset; a folder that fails
    verification is exported again. The export is written to a temp folder and
    renamed into place, so a concurrent reader sees a whole export or none.
    """
    digest = sha256_file(Path(checkpoint))
    root = Path(cache_dir) / "onnx"
    target = root / f"{digest[:16]}-opset{opset}"
    if _valid_export(target, digest):
        return target
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)  # exports that a kill interrupted
    tmp = temp_dir(target)
    try:
        export_model(checkpoint, tmp, opset)
        replace_dir(tmp, target)
    except OSError:
        if not _valid_export(target, digest):  # not a concurrent writer that got there first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _valid_export(folder: Path, checkpoint_sha256: str) -> bool:
    try:
        manifest = read_manifest(folder)
    except (FileNotFoundError, ValueError, KeyError):
        return False
    return bool(manifest.get("source_checkpoint_sha256") == checkpoint_sha256)
