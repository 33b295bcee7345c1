"""What every backend is: the interface over the three ways to run the tracker network
(torch, onnxruntime, TensorRT), the request a backend opens from and the cache folder.
factory.py chooses and opens one by name (`create_backend`)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.inference.manifest import NUM_CAMERAS, boxes_from_codes, num_detections
from syncl_ros.model.config import ModelConfig
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots

BACKENDS = ("tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16")
CACHE_ENV = "SYNCL_CACHE_DIR"


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (missing library or device, failed engine build); fallback may help."""


@dataclass(frozen=True)
class ModelInfo:
    """Static facts every backend knows about its model (fixed by the export's static shapes)."""

    cameras: int
    height: int
    width: int
    embed_dim: int
    num_slots: int
    num_det: int
    num_classes: int
    num_layers: int  # decoder layers
    pc_range: tuple[float, float, float, float, float, float]  # the range reference points normalize

    @staticmethod
    def from_config(cfg: ModelConfig, cameras: int = NUM_CAMERAS) -> ModelInfo:
        return ModelInfo(
            cameras=cameras,
            height=cfg.input.height,
            width=cfg.input.width,
            embed_dim=cfg.embed_dim,
            num_slots=cfg.num_slots,
            num_det=num_detections(cfg),
            num_classes=cfg.num_classes,
            num_layers=cfg.num_layers,
            pc_range=cfg.pc_range,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of each network input image."""
        return self.height, self.width

    @property
    def num_rows(self) -> int:
        """Rows of DecoderOutputs: detections, then the slots."""
        return self.num_det + self.num_slots


class Backend(ABC):
    """Encoder + decoder of one model on one device; see the module docstring."""

    name: str = ""
    info: ModelInfo
    device: str = "cpu"
    precision: str = "fp32"
    # Why this backend runs (filled in by create_backend when a fallback was taken).
    selection: list[str]

    @abstractmethod
    def encode(self, images: NDArray[np.float32]) -> Any:
        """(N, 3, H, W) float32 normalized images of one frame -> a features handle for decode()."""

    @abstractmethod
    def decode(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> DecoderOutputs:
        """Features from encode(), img2lidar (N, 4, 4) and the track slots -> one frame's outputs.

        cameras (N,) bool: the cameras whose images the frame holds (None: all); the others' image
        tokens and heatmap cells are masked out inside the network.
        """

    @abstractmethod
    def decode_layers(
        self,
        features: Any,
        img2lidar: NDArray[np.float32],
        slots: TrackSlots,
        cameras: NDArray[np.bool_] | None = None,
    ) -> Iterator[DecoderOutputs]:
        """decode() one layer at a time: each decoder layer's outputs in turn, layer 1 first.

        A caller that stops iterating skips the layers after (early exit); run to the end, the last
        equals decode()'s outputs. The per-layer graphs are made ready on first use, or when the
        backend is created with the option layers=True.
        """

    def synchronize(self) -> None:  # noqa: B027 - a no-op default that GPU backends override
        """Wait for queued device work (timing); a no-op where calls are synchronous."""

    def warmup(self, iterations: int = 2) -> None:
        """Run blank frames so lazy initialisation (allocations, kernels, graphs) happens now."""
        images = np.zeros((self.info.cameras, 3, *self.info.input_size), np.float32)
        img2lidar = np.tile(np.eye(4, dtype=np.float32), (self.info.cameras, 1, 1))
        for _ in range(iterations):
            self.decode(self.encode(images), img2lidar, empty_slots(self.info))
        self.synchronize()

    # -- shared input checks ---------------------------------------------------------

    def check_images(self, images: NDArray[np.float32]) -> NDArray[np.float32]:
        expected = (self.info.cameras, 3, *self.info.input_size)
        a = np.ascontiguousarray(images, dtype=np.float32)
        if a.shape != expected:
            raise ValueError(f"{self.name} backend: images must be {expected}, got {a.shape}")
        return a

    def check_frame(
        self, img2lidar: NDArray[np.float32], slots: TrackSlots, cameras: NDArray[np.bool_] | None = None
    ) -> tuple[NDArray[np.float32], ...]:
        """img2lidar, the slots and the camera mask as contiguous float32 arrays of the exported
        shapes (masks as 0/1), in the order of the decoder's inputs after the features."""
        s, c, n = self.info.num_slots, self.info.embed_dim, self.info.cameras
        used = np.ones(n, bool) if cameras is None else np.asarray(cameras)
        if used.shape == (n,) and not used.any():
            raise ValueError(f"{self.name} backend: a frame needs at least one camera")
        arrays = (
            ("img2lidar", img2lidar, (n, 4, 4)),
            ("slots.embeddings", slots.embeddings, (s, c)),
            ("slots.refs", slots.refs, (s, 3)),
            ("slots.mask", slots.mask, (s,)),
            ("cameras", used, (n,)),
        )
        out = []
        for name, value, shape in arrays:
            a = np.ascontiguousarray(value, dtype=np.float32)
            if a.shape != shape:
                raise ValueError(f"{self.name} backend: {name} must be {shape}, got {a.shape}")
            out.append(a)
        return tuple(out)


def empty_slots(info: ModelInfo) -> TrackSlots:
    return TrackSlots.empty(info.num_slots, info.embed_dim)


def outputs_from_arrays(
    scores: ArrayLike, codes: ArrayLike, refs: ArrayLike, embeddings: ArrayLike
) -> DecoderOutputs:
    """Exported decoder outputs of one frame (leading batch axis of 1 allowed) -> DecoderOutputs."""

    def rows(a: ArrayLike) -> NDArray[Any]:
        a = np.asarray(a)
        return a[0] if a.ndim == 3 else a

    return DecoderOutputs(
        scores=rows(scores).astype(np.float32, copy=False),
        boxes=boxes_from_codes(rows(codes)),
        refs=rows(refs).astype(np.float32, copy=False),
        embeddings=rows(embeddings).astype(np.float32, copy=False),
    )


# -- requests, devices, cache -----------------------------------------------------------------


def default_cache_dir() -> Path:
    """$SYNCL_CACHE_DIR, else $XDG_CACHE_HOME/syncl_ros, else ~/.cache/syncl_ros."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "syncl_ros"


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@dataclass
class BackendRequest:
    model: Path
    device: str = "cpu"
    precision: str = "fp32"
    cache_dir: Path = field(default_factory=default_cache_dir)
    options: dict[str, Any] = field(default_factory=dict)
