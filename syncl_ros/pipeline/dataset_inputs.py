"""A dataset frame (:class:`~syncl_ros.data.frames.Frame`) -> network inputs, exactly as the node
prepares a live frame: the same image preparation and the same camera geometry. Training,
feature caching and offline tracking all read frames through here."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from syncl_ros.data.frames import Frame, read_rgb
from syncl_ros.model.config import ModelConfig
from syncl_ros.model.inputs import camera_geometry, prepare_image, reduce_factor
from syncl_ros.pipeline.frame_inputs import FrameInputs


def frame_images(frame: Frame, cfg: ModelConfig) -> torch.Tensor:
    """(N, 3, H, W) normalized network inputs of one frame, exactly as inference prepares them."""
    images = []
    for cam in frame.cameras:
        rgb = read_rgb(cam.path, reduce_factor(cam.width, cfg.input))
        images.append(prepare_image(rgb, cam.width, cam.height, cfg.input))
    return torch.from_numpy(np.stack(images))


def frame_geometry(frame: Frame, cfg: ModelConfig) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(lidar2img, img2lidar) of one frame; needs no image decoding."""
    return camera_geometry(
        [c.intrinsics for c in frame.cameras],
        [c.cam_to_model for c in frame.cameras],
        [(c.width, c.height) for c in frame.cameras],
        cfg.input,
    )


def frame_tensors(
    frame: Frame, cfg: ModelConfig
) -> tuple[torch.Tensor, NDArray[np.float32], NDArray[np.float32]]:
    """(images, lidar2img, img2lidar) of one frame, exactly as inference prepares them."""
    return (frame_images(frame, cfg), *frame_geometry(frame, cfg))


def dataset_frame_inputs(
    frame: Frame, cfg: ModelConfig, cameras: NDArray[np.bool_], with_images: bool = True
) -> FrameInputs:
    """The frame as :class:`FrameInputs`; ``cameras`` (N,) bool masks cameras out as the node does
    with a camera that fails (blank image, hidden from the decoder). Without images (their
    encoder features come from elsewhere, e.g. a feature cache) no image is read."""
    lidar2img, img2lidar = frame_geometry(frame, cfg)
    images = None
    if with_images:
        images = frame_images(frame, cfg).numpy()
        images[~cameras] = 0.0
    return FrameInputs(frame.timestamp_ns, images, img2lidar, frame.model_to_world, lidar2img, cameras)
