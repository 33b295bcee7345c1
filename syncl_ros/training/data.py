"""Training samples: clips of T consecutive key frames as network-ready tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from syncl_ros.data.frames import Frame, NuScenesFrames
from syncl_ros.model.backbone import STRIDE
from syncl_ros.model.config import ModelConfig
from syncl_ros.pipeline.dataset_inputs import frame_geometry, frame_images
from syncl_ros.training.depth_targets import frame_depth_targets

if TYPE_CHECKING:  # an annotation only: the dataset takes any built cache
    from syncl_ros.pipeline.feature_cache import FeatureCache


@dataclass
class FrameSample:
    images: torch.Tensor | None  # (N, 3, H, W) normalized; None when `features` come from the cache
    lidar2img: torch.Tensor  # (N, 4, 4) for network-input pixels
    img2lidar: torch.Tensor  # (N, 4, 4)
    boxes: torch.Tensor  # (G, 9) ground truth in the model frame
    labels: torch.Tensor  # (G,)
    instances: torch.Tensor  # (G,) integer ids, consistent within the clip
    timestamp_ns: int
    model_to_world: torch.Tensor  # (4, 4) float64
    features: torch.Tensor | None = None  # (N, C, h, w) float16 encoder features from the on-disk cache
    depth: torch.Tensor | None = None  # (N, h, w) lidar depth per feature cell, 0 where no point


def in_range(boxes: NDArray[np.float64], pc_range: tuple[float, ...]) -> NDArray[np.bool_]:
    lo, hi = np.asarray(pc_range[:3]), np.asarray(pc_range[3:])
    inside: NDArray[np.bool_] = np.all((boxes[:, :3] >= lo) & (boxes[:, :3] <= hi), axis=1)
    return inside


def kept_ground_truth(frame: Frame, box_range: tuple[float, ...], min_points: int = 1) -> NDArray[np.bool_]:
    """The boxes training learns from: inside `box_range`, with at least `min_points` lidar points
    (as the nuScenes benchmark filters its ground truth)."""
    kept: NDArray[np.bool_] = in_range(frame.boxes, box_range) & (frame.num_points >= min_points)
    return kept


class ClipDataset(Dataset[list[FrameSample]]):
    """Every run of `length` consecutive key frames of the selected scenes.

    Ground truth is kept where it lies inside the detection range and has at
    least `min_points` lidar points (as the nuScenes benchmark filters it).
    With a (built) `cache` of the same frames, samples carry the cached encoder
    features instead of images, and no image is decoded. With `depth_targets`,
    samples carry the lidar depth of each feature cell (dense depth supervision), objects'
    points first with `depth_objects_first` (training/depth_targets.py).
    `gt_range` widens the range of the kept ground truth (for BEV augmentation, which cuts
    it to the detection range after moving the scene).
    """

    def __init__(
        self,
        frames: NuScenesFrames,
        cfg: ModelConfig,
        length: int,
        min_points: int = 1,
        cache: FeatureCache | None = None,
        depth_targets: bool = False,
        gt_range: tuple[float, ...] | None = None,
        depth_objects_first: bool = False,
    ) -> None:
        self.frames, self.cfg, self.min_points, self.cache = frames, cfg, min_points, cache
        self.gt_range = gt_range or cfg.pc_range
        self.depth_targets, self.depth_objects_first = depth_targets, depth_objects_first
        self.clips = frames.clips(length)
        if not self.clips:
            raise ValueError(f"no scene has {length} consecutive key frames")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> list[FrameSample]:
        ids: dict[str, int] = {}
        return [self._sample(j, ids) for j in self.clips[i]]

    def clip_classes(self) -> list[set[int]]:
        """The classes of the ground truth each clip keeps (for class-balanced sampling)."""
        labels = []
        for j in range(len(self.frames)):
            frame = self.frames[j]
            labels.append(set(frame.labels[self._kept(frame)].tolist()))
        return [set().union(*(labels[j] for j in clip)) for clip in self.clips]

    def _kept(self, frame: Frame) -> NDArray[np.bool_]:
        return kept_ground_truth(frame, self.gt_range, self.min_points)

    def _sample(self, index: int, ids: dict[str, int]) -> FrameSample:
        frame = self.frames[index]
        l2i, i2l = frame_geometry(frame, self.cfg)
        keep = self._kept(frame)
        instances = [ids.setdefault(tok, len(ids)) for tok, k in zip(frame.instances, keep, strict=True) if k]
        return FrameSample(
            images=None if self.cache is not None else frame_images(frame, self.cfg),
            lidar2img=torch.from_numpy(l2i),
            img2lidar=torch.from_numpy(i2l),
            boxes=torch.from_numpy(frame.boxes[keep]).float(),
            labels=torch.from_numpy(frame.labels[keep]),
            instances=torch.tensor(instances, dtype=torch.long),
            timestamp_ns=frame.timestamp_ns,
            model_to_world=torch.from_numpy(frame.model_to_world.matrix()),
            features=self.cache.features(index) if self.cache is not None else None,
            depth=self._depth(frame, l2i) if self.depth_targets else None,
        )

    def _depth(self, frame: Frame, lidar2img: NDArray[np.float32]) -> torch.Tensor:
        h, w = self.cfg.input.height // STRIDE, self.cfg.input.width // STRIDE
        grid = frame_depth_targets(frame, lidar2img, h, w, STRIDE, objects_first=self.depth_objects_first)
        return torch.from_numpy(grid)


def collate_clips(batch: list[list[FrameSample]]) -> list[list[FrameSample]]:
    return batch


class Indexed(Dataset[tuple[int, list[FrameSample]]]):
    """(index, clip) pairs: the training loop records which clips each step saw."""

    def __init__(self, data: ClipDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[int, list[FrameSample]]:
        return i, self.data[i]


def collate_indexed(
    batch: list[tuple[int, list[FrameSample]]],
) -> tuple[list[int], list[list[FrameSample]]]:
    return [i for i, _ in batch], [clip for _, clip in batch]
