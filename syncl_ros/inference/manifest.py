"""What an export folder holds and promises: file names, tensor names, the manifest, host steps.

Kept free of torch imports, so that the onnxruntime backend (and tools that
only read exports) run without loading PyTorch: about 180 MB less resident
memory on small CPU and Jetson targets.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.experiment import Experiment
from syncl_ros.model.config import ModelConfig

FORMAT = "syncl_ros.export/3"  # 2: the decoder takes camera_mask; 3: also cut after each layer (early exit)
MANIFEST = "export.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DEFAULT_OPSET = 17  # TensorRT 10 parses opsets 9..20 and up; 17 is the first with LayerNormalization
NUM_CAMERAS = 6

ENCODER_INPUTS = ("images",)
ENCODER_OUTPUTS = ("features",)
DECODER_INPUTS = ("features", "img2lidar", "track_embeddings", "track_refs", "track_mask", "camera_mask")
DECODER_OUTPUTS = ("scores", "codes", "refs", "embeddings")

# The decoder cut after each layer (early exit; inference/layer_graphs.py): decoder_layer1.onnx takes
# DECODER_INPUTS and gives layer 1's DECODER_OUTPUTS plus the frame's LAYER_CONTEXT; each further
# decoder_layer<k>.onnx takes the previous layer's embeddings and refs as LAYER_QUERIES, the
# context, and gives layer k's DECODER_OUTPUTS. "hidden_rows" exists where tracks claim seeds.
LAYER_QUERIES = ("query_features", "query_refs")
LAYER_CONTEXT = ("memory", "memory_pos", "query_bias", "memory_bias", "hidden_rows")


def num_detections(cfg: ModelConfig) -> int:
    """Detection rows of the decoder output: learned anchors plus heatmap top-k queries."""
    return cfg.num_queries + (cfg.dense_queries if cfg.dense_heads else 0)


def layer_graph(k: int) -> str:
    """Manifest name of the decoder graph that ends with layer k (from 1); its file adds ".onnx"."""
    return f"decoder_layer{k}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- reading exports ----------------------------------------------------------------------


def is_export_dir(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def read_manifest(folder: Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of an export folder; with verify, checks that both ONNX files match their sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an export folder (no {MANIFEST}); run `syncl export`")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path}: export format {manifest.get('format')!r}, this version reads {FORMAT}; "
            "export the checkpoint again with `syncl export`"
        )
    if verify:
        for name, graph in manifest["graphs"].items():
            file = folder / graph["file"]
            if not file.is_file() or sha256_file(file) != graph["sha256"]:
                raise ValueError(f"{file}: missing or changed since export ({name} graph sha256 differs)")
    return manifest


def manifest_experiment(manifest: dict[str, Any]) -> Experiment:
    return Experiment.from_dict(manifest["experiment"], where=MANIFEST)


# -- host side of the graphs -----------------------------------------------------------------


def boxes_from_codes(codes: ArrayLike) -> NDArray[np.float64]:
    """Metric codes (…, 10) [x, y, z, log l, log w, log h, sin, cos, vx, vy] -> boxes (…, 9) float64.

    The numpy twin of BoxCoder.to_boxes, run on the host because ONNX lacks Atan2.
    """
    c = np.asarray(codes, dtype=np.float64)
    yaw = np.arctan2(c[..., 6:7], c[..., 7:8])
    return np.concatenate([c[..., :3], np.exp(c[..., 3:6]), yaw, c[..., 8:10]], axis=-1)
