"""Camera images and calibration -> network inputs (shared by training, offline
tracking and the ROS node, so that all three feed the network identically)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.geometry import Transform, ego_to_image, image_transform
from syncl_ros.model.config import InputConfig


@dataclass(frozen=True)
class Resize:
    """Resize a (src_w, src_h) image by `scale`, then crop `crop_top` rows: the network's view."""

    scale: float
    crop_top: int

    @staticmethod
    def for_input(src_width: int, src_height: int, cfg: InputConfig) -> Resize:
        scale = cfg.width / src_width
        resized_h = round(src_height * scale)
        if resized_h < cfg.height:
            raise ValueError(
                f"a {src_width}x{src_height} image resized to width {cfg.width} is only {resized_h} rows, "
                f"fewer than the input height {cfg.height}"
            )
        return Resize(scale, resized_h - cfg.height)

    def matrix(self) -> NDArray[np.float64]:
        """3x3 from source pixels to network-input pixels."""
        return image_transform(self.scale, self.scale, 0.0, float(self.crop_top))


def prepare_image(
    rgb: NDArray[np.uint8], src_width: int, src_height: int, cfg: InputConfig
) -> NDArray[np.float32]:
    """An RGB uint8 image (possibly already decoded at reduced scale) -> (3, H, W) float32 normalized."""
    resize = Resize.for_input(src_width, src_height, cfg)
    resized_h = cfg.height + resize.crop_top
    if rgb.shape[1] != cfg.width or rgb.shape[0] != resized_h:
        resized = cv2.resize(rgb, (cfg.width, resized_h), interpolation=cv2.INTER_AREA)
        rgb = cast("NDArray[np.uint8]", resized)  # resizing keeps the dtype
    crop = rgb[resize.crop_top :]
    x = crop.astype(np.float32) / 255.0
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def camera_geometry(
    intrinsics: Sequence[ArrayLike],
    cam_to_model: Sequence[Transform],
    src_sizes: Sequence[tuple[int, int]],
    cfg: InputConfig,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(lidar2img, img2lidar) per camera, (N, 4, 4) float32, for network-input pixels.

    The inverse is computed here, on the host, so that no matrix inverse has to
    run inside an exported graph.
    """
    l2i = []
    for K, T, (w, h) in zip(intrinsics, cam_to_model, src_sizes, strict=True):
        l2i.append(ego_to_image(K, T, Resize.for_input(w, h, cfg).matrix()))
    lidar2img = np.stack(l2i)
    return lidar2img.astype(np.float32), np.linalg.inv(lidar2img).astype(np.float32)


def reduce_factor(src_width: int, cfg: InputConfig) -> int:
    """Largest JPEG decode reduction (1, 2, 4, 8) that still leaves at least the input width."""
    return decode_reduction(src_width, cfg.width)


def decode_reduction(full_width: int, min_width: int | None) -> int:
    """Largest of 8, 4, 2 whose decoded width is still >= ``min_width`` (1: none). The decoded
    width is rounded up, as libjpeg's scaled decoding (OpenCV's IMREAD_REDUCED_*) does; the node
    and the training data both decode through here, so they prepare images alike."""
    if min_width is None:
        return 1
    for factor in (8, 4, 2):
        if -(-full_width // factor) >= min_width:
            return factor
    return 1
