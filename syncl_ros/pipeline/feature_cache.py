"""On-disk cache of the image encoder's per-camera features, for the tracking stage.

The tracking stage freezes the encoder, so its output for a frame never changes:
it is computed once here and read back (memory-mapped) at every step. Offline
tracking reads it too (learning curves, tuning), hence its place below training.

Layout: `root/<key>/<scene>.npy`, float16 `(frames_in_scene, N, C, h, w)`, plus
`manifest.json`. The key hashes the encoder weights, the input configuration and
the data, so a changed model or dataset never reads stale features.

Size: float16, N × C × (H/16) × (W/16) × 2 bytes per frame (N = 6 cameras; C + 1 with
`model.fine_center_depth`, whose depth is the last channel), e.g.
tiny (C=128, 352×128): 6 × 128 × 22 × 8 × 2 B = 264 KiB per frame;
r50_704x256 (C=256): 6 × 256 × 44 × 16 × 2 B = 2.1 MiB per frame (about 58 GiB
for the 28k key frames of nuScenes trainval).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from syncl_ros.atomic import remove_stale_partials, write_atomic, write_json_atomic
from syncl_ros.data.frames import NuScenesFrames
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.network import TrackerNet
from syncl_ros.pipeline.dataset_inputs import frame_images
from syncl_ros.rig import CAMERA_CHANNELS

FORMAT = "syncl_ros.features/1"  # bump when the encoder's code changes what equal weights compute
MANIFEST = "manifest.json"


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict (names sorted), as float32 bytes."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(value.shape)}".encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


def encoder_digest(net: TrackerNet) -> str:
    """What the cached encoder output depends on: the backbone, and the fine depth head if any
    (it runs in the encoder; a model without one keeps the backbone's digest as its key part)."""
    digest = weights_digest(net.backbone)
    if net.cfg.fine_center_depth:
        digest += "+" + weights_digest(net.fine_depth_head)
    return digest


def data_digest(frames: NuScenesFrames) -> str:
    """sha256 over every frame's token and its images' relative paths, sizes and mtimes.

    Size + mtime_ns rather than content: hashing every image on each start
    would cost about as much as encoding them again.
    """
    nusc, h = frames.nusc, hashlib.sha256()
    root = Path(nusc.dataroot)
    for token in frames.sample_tokens():
        h.update(f"{token}\n".encode())
        data = nusc.get("sample", token)["data"]  # the tables, not frames[i]: no ground truth to build
        for channel in CAMERA_CHANNELS:
            rel = nusc.get("sample_data", data[channel])["filename"]
            st = (root / rel).stat()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@contextmanager
def _inference_mode(net: TrackerNet) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics, as in the frozen training), float32, no autograd."""
    was_training = net.training
    net.eval()
    try:
        device = next(net.parameters()).device.type
        with torch.no_grad(), torch.autocast(device, enabled=False):
            yield
    finally:
        net.train(was_training)


class FeatureCache:
    def __init__(self, root: Path, net: TrackerNet, frames: NuScenesFrames, cfg: ModelConfig) -> None:
        self.root, self.net, self.frames, self.cfg = Path(root), net, frames, cfg
        self.parts: dict[str, Any] = {
            "format": FORMAT,
            "weights": encoder_digest(net),
            "input": asdict(cfg.input),
            "data": data_digest(frames),
        }
        # frame index -> (scene, position in the scene's array)
        self._where = [(s, k) for s, r in frames.scene_slices.items() for k in range(len(r))]
        self._arrays: dict[str, NDArray[np.float16]] = {}  # opened memmaps, one per scene

    @cached_property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()

    @property
    def directory(self) -> Path:
        return self.root / self.key

    def scene_path(self, scene: str) -> Path:
        return self.directory / f"{scene}.npy"

    def missing_scenes(self) -> list[str]:
        return [s for s in self.frames.scene_names if not self.scene_path(s).is_file()]

    # -- building ---------------------------------------------------------------------

    def build(self, progress: bool = True) -> None:
        """Encode every scene not cached yet; each scene file appears atomically, so an
        interrupted build resumes with the scenes it had not finished."""
        remove_stale_partials(self.directory)  # scene files a kill interrupted while writing
        todo = self.missing_scenes()
        if not todo and (self.directory / MANIFEST).is_file():
            return
        with _inference_mode(self.net):
            for scene in tqdm(todo, desc="feature cache", unit="scene", disable=not progress):
                self._write_scene(scene)
        write_json_atomic(self.directory / MANIFEST, self._manifest(), indent=1)

    def _encode(self, index: int) -> NDArray[np.float32]:
        device = next(self.net.parameters()).device
        images = frame_images(self.frames[index], self.cfg).to(device)
        return self.net.encode(images[None])[0].cpu().numpy()

    def _write_scene(self, scene: str) -> None:
        feats = np.stack([self._encode(i) for i in self.frames.scene_slices[scene]]).astype(np.float16)
        if not np.isfinite(feats).all():
            raise ValueError(f"encoder features of {scene} overflow float16")
        write_atomic(self.scene_path(scene), lambda f: np.save(f, feats))
        self._arrays.pop(scene, None)  # a memmap of a replaced file would read the old one

    def _manifest(self) -> dict[str, Any]:
        tokens = self.frames.sample_tokens()
        scenes = {
            s: {"shape": list(self._array(s).shape), "tokens": [tokens[i] for i in r]}
            for s, r in self.frames.scene_slices.items()
        }
        return {"key": self.key, "parts": self.parts, "dtype": "float16", "scenes": scenes}

    # -- reading ----------------------------------------------------------------------

    def _array(self, scene: str) -> NDArray[np.float16]:
        if scene not in self._arrays:
            path = self.scene_path(scene)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: scene {scene} is not in the feature cache; build() it")
            self._arrays[scene] = np.load(path, mmap_mode="r")
        return self._arrays[scene]

    def features(self, index: int) -> torch.Tensor:
        """Cached (N, C, h, w) float16 encoder features of frame `index` of `frames`."""
        scene, k = self._where[index]
        return torch.from_numpy(np.array(self._array(scene)[k]))  # a copy: the memmap is read-only
