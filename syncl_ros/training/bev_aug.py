"""Whole-scene BEV augmentation of a training clip: one random flip, rotation about z and scale
of the model frame, the same for every frame of the clip (as BEVDet/PETR augment the scene).

The images, and so the cached encoder features, are left as they are: what changes is where
the model frame sits. With ``A = s·R(θ)·F`` (F mirrors y), a point p of the model frame is
``A p`` afterwards, so
- boxes: centers and sizes scale, yaw turns by θ (mirrored first), velocities turn and scale;
- camera geometry: ``lidar2img · A⁻¹`` and ``A · img2lidar``, so every box still projects
  onto the same pixels and the position embedding sees the cameras where the scene now is;
- ego poses: ``A · model_to_world · A⁻¹``, the same similarity applied to the world too, which
  keeps each pose rigid and the motion between frames consistent (the tracker's ego motion,
  measured velocities);
- lidar depth per feature cell scales with s.
Ground truth is then cut to the detection range. A dataset for augmented training keeps the
boxes of a wider range (`gt_range`), so that a rotation or a zoom-out brings in the objects
it moves into the range instead of leaving them out as background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray

from syncl_ros.experiment.train_config import AugConfig
from syncl_ros.training.data import FrameSample, in_range


@dataclass(frozen=True)
class BevAug:
    """One draw: mirror y first, then rotate by `angle` (radians) about z, then scale by `scale`."""

    flip: bool = False
    angle: float = 0.0
    scale: float = 1.0

    def matrix(self) -> NDArray[np.float64]:
        """The 4x4 similarity A of the model frame."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        mirror = np.diag([1.0, -1.0 if self.flip else 1.0, 1.0])
        a = np.eye(4)
        a[:3, :3] = self.scale * rot @ mirror
        return a

    def boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(G, 9) boxes ``[x, y, z, l, w, h, yaw, vx, vy]`` moved into the augmented frame."""
        a = torch.from_numpy(self.matrix()[:3, :3]).to(boxes.dtype)
        out = boxes.clone()
        out[:, :3] = boxes[:, :3] @ a.T
        out[:, 3:6] = boxes[:, 3:6] * self.scale
        yaw = -boxes[:, 6] if self.flip else boxes[:, 6]
        out[:, 6] = torch.atan2(torch.sin(yaw + self.angle), torch.cos(yaw + self.angle))
        out[:, 7:9] = boxes[:, 7:9] @ a[:2, :2].T
        return out


def draw(cfg: AugConfig, generator: torch.Generator) -> BevAug:
    """A random augmentation within `cfg`'s limits (always three draws, so a run's stream of
    random numbers does not depend on which parts are on)."""
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    return BevAug(
        flip=cfg.bev_flip and u[0] < 0.5,
        angle=math.radians(cfg.bev_rotate_deg) * (2.0 * u[1] - 1.0),
        scale=1.0 + cfg.bev_scale * (2.0 * u[2] - 1.0),
    )


def gt_range(pc_range: tuple[float, ...], cfg: AugConfig) -> tuple[float, ...]:
    """The range whose boxes an augmentation within `cfg` can move into `pc_range`."""
    if not cfg.bev:
        return tuple(pc_range)
    lo, hi = np.asarray(pc_range[:3], dtype=np.float64), np.asarray(pc_range[3:], dtype=np.float64)
    grow = 1.0 / (1.0 - cfg.bev_scale)  # the largest zoom-out
    reach = float(np.hypot(*np.maximum(np.abs(lo[:2]), np.abs(hi[:2])))) * grow  # any rotation
    z_lo, z_hi = lo[2] * grow, hi[2] * grow
    return (-reach, -reach, min(z_lo, z_hi), reach, reach, max(z_lo, z_hi))


def augment_sample(sample: FrameSample, aug: BevAug, pc_range: tuple[float, ...]) -> FrameSample:
    """`sample` in the augmented model frame, its ground truth cut to `pc_range`."""
    a = aug.matrix()
    a_inv = np.linalg.inv(a)
    boxes = aug.boxes(sample.boxes)
    keep = torch.from_numpy(in_range(boxes.double().numpy(), pc_range))
    l2i = sample.lidar2img.double() @ torch.from_numpy(a_inv)
    i2l = torch.from_numpy(a) @ sample.img2lidar.double()
    pose = torch.from_numpy(a) @ sample.model_to_world.double() @ torch.from_numpy(a_inv)
    return replace(
        sample,
        boxes=boxes[keep],
        labels=sample.labels[keep],
        instances=sample.instances[keep],
        lidar2img=l2i.to(sample.lidar2img.dtype),
        img2lidar=i2l.to(sample.img2lidar.dtype),
        model_to_world=pose.to(sample.model_to_world.dtype),
        depth=None if sample.depth is None else sample.depth * aug.scale,
    )


def augment_clip(clip: list[FrameSample], aug: BevAug, pc_range: tuple[float, ...]) -> list[FrameSample]:
    return [augment_sample(s, aug, pc_range) for s in clip]
