"""Image-space augmentation of a training sample: each camera's network input zoomed, shifted and
mirrored on its own, with the camera geometry updated to match (as BEVDet/PETR augment images).

A pixel of the input moves by the affine P (``u' = f·z·u + t``, f = -1 when mirrored), so the
camera's ``lidar2img`` becomes ``P · lidar2img`` and every 3D point still projects onto what the
image shows there; the lidar depth per feature cell moves with the pixels (a zoom changes the
focal length, not how far a point is). Pixel coordinates follow `geometry.image_transform`:
continuous, the image spans [0, W] × [0, H], a pixel's center at i + 0.5. It needs the images,
so it applies to the detection stage; the tracking stage reads cached encoder features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from syncl_ros.experiment.train_config import AugConfig
from syncl_ros.training.data import FrameSample


@dataclass(frozen=True)
class ImageAug:
    """One camera's draw: zoom about the image center, shift (fractions of width and height),
    then mirror left-right."""

    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False

    def matrix(self, width: int, height: int) -> NDArray[np.float64]:
        """3x3 pixel affine P from the input image to the augmented one."""
        cx, cy = width / 2.0, height / 2.0
        p = np.array(
            [
                [self.zoom, 0.0, cx - self.zoom * cx + self.shift[0] * width],
                [0.0, self.zoom, cy - self.zoom * cy + self.shift[1] * height],
                [0.0, 0.0, 1.0],
            ]
        )
        if self.flip:
            p = np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ p
        return p


def draw_images(cfg: AugConfig, cameras: int, generator: torch.Generator) -> list[ImageAug]:
    """One draw per camera within `cfg`'s limits (four numbers each, whichever parts are on)."""
    u = torch.rand(cameras, 4, generator=generator, dtype=torch.float64).tolist()
    return [
        ImageAug(
            zoom=1.0 + cfg.image_zoom * (2.0 * a - 1.0),
            shift=(cfg.image_shift * (2.0 * b - 1.0), cfg.image_shift * (2.0 * c - 1.0)),
            flip=cfg.image_flip and d < 0.5,
        )
        for a, b, c, d in u
    ]


def _warp(x: torch.Tensor, p: NDArray[np.float64], size: tuple[int, int], mode: str) -> torch.Tensor:
    """(C, h, w) map resampled so that what sat at pixel u of a `size` (W, H) image sits at P u."""
    width, height = size
    h, w = x.shape[-2:]
    # centers of the output cells in image pixels, mapped back through P⁻¹
    sx, sy = width / w, height / h
    ys, xs = torch.meshgrid(
        (torch.arange(h, dtype=torch.float64) + 0.5) * sy,
        (torch.arange(w, dtype=torch.float64) + 0.5) * sx,
        indexing="ij",
    )
    inv = torch.from_numpy(np.linalg.inv(p))
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    grid = torch.stack([2.0 * src_x / width - 1.0, 2.0 * src_y / height - 1.0], dim=-1)
    out = F.grid_sample(x[None].double(), grid[None], mode=mode, padding_mode="zeros", align_corners=False)
    return out[0].to(x.dtype)


def augment_images(sample: FrameSample, augs: list[ImageAug]) -> FrameSample:
    """`sample` with each camera's image (and lidar depth) warped and its geometry updated."""
    if sample.images is None:
        raise ValueError("image augmentation needs the images: cached features cannot be warped")
    n, _, height, width = sample.images.shape
    if len(augs) != n:
        raise ValueError(f"{len(augs)} image augmentations for {n} cameras")
    images, depth, l2i = [], [], []
    for cam, aug in enumerate(augs):
        p = aug.matrix(width, height)
        images.append(_warp(sample.images[cam], p, (width, height), "bilinear"))
        if sample.depth is not None:  # nearest: a cell's depth is one lidar point's, never a blend
            depth.append(_warp(sample.depth[cam][None], p, (width, height), "nearest")[0])
        p4 = np.eye(4)  # acts on (u·d, v·d, d, 1): the shift scales with the depth row
        p4[:2, :2], p4[:2, 2] = p[:2, :2], p[:2, 2]
        l2i.append(torch.from_numpy(p4) @ sample.lidar2img[cam].double())
    lidar2img = torch.stack(l2i)
    return replace(
        sample,
        images=torch.stack(images),
        depth=torch.stack(depth) if sample.depth is not None else None,
        lidar2img=lidar2img.to(sample.lidar2img.dtype),
        img2lidar=torch.linalg.inv(lidar2img).to(sample.img2lidar.dtype),
    )
