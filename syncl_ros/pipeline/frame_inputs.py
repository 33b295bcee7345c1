"""A synchronized rig frame (six images + calibration + ego poses) -> network inputs.

Pure functions over decoded message contents (no rclpy), so that they can be tested and
reused without a running node. The model frame is base_link at the anchor
camera's stamp; each camera's own capture time is honoured through the ego
pose at that time (the rig's cameras fire tens of milliseconds apart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from syncl_ros.geometry import Transform
from syncl_ros.model.config import InputConfig
from syncl_ros.model.inputs import camera_geometry, prepare_image
from syncl_ros.pipeline.ego_gaps import EgoPoseGapError
from syncl_ros.pipeline.images import (
    ImageDecodeError,
    compressed_image_size,
    decode_compressed_image,
    image_to_rgb,
)


class FrameError(ValueError):
    """A frame that cannot be turned into network inputs; `reason` is a short counter key."""

    def __init__(self, reason: str, channel: str | None, message: str) -> None:
        super().__init__(f"{channel}: {message}" if channel else message)
        self.reason = reason
        self.channel = channel
        self.message = message


@dataclass(frozen=True)
class CameraIntrinsics:
    K: NDArray[np.float64]  # (3, 3)
    width: int
    height: int
    frame_id: str


@dataclass(frozen=True)
class FrameInputs:
    """What the network and the tracker take for one frame."""

    stamp_ns: int
    images: NDArray[np.float32] | None  # (N, 3, H, W) (zeros for a missing camera); None: features given
    img2lidar: NDArray[np.float32]  # (N, 4, 4) (a placeholder for a missing camera)
    model_to_world: Transform  # base_link at the frame's stamp -> world
    lidar2img: NDArray[np.float32] | None = None  # (N, 4, 4), model frame -> input pixels (for overlays)
    cameras: NDArray[np.bool_] | None = None  # (N,) the cameras the frame holds (None: all)
    missing: dict[str, FrameError] = field(default_factory=dict)  # cameras left out, and why

    @property
    def used(self) -> NDArray[np.bool_]:
        """(N,) bool: the cameras the frame holds."""
        return np.ones(len(self.img2lidar), bool) if self.cameras is None else self.cameras


def image_size(msg: Any, transport: str) -> tuple[int, int]:
    """(width, height) the message declares (raw: its fields; compressed: the JPEG/PNG header)."""
    if transport == "compressed":
        return compressed_image_size(msg)
    return int(msg.width), int(msg.height)


def decode_image(msg: Any, transport: str, min_width: int) -> tuple[NDArray[np.uint8], int, int]:
    """(rgb at reduced scale where possible, full width, full height)."""
    if transport == "compressed":
        decoded = decode_compressed_image(msg, min_width=min_width)
        return decoded.rgb, decoded.full_width, decoded.full_height
    rgb = image_to_rgb(msg)
    return rgb, rgb.shape[1], rgb.shape[0]


@dataclass(frozen=True)
class CameraImage:
    """One camera image turned into network input (as it arrives once its camera's CameraInfo is
    known, so that decoding overlaps the wait for the rig's other cameras); a problem is kept and
    reported with its frame."""

    pixels: NDArray[np.float32] | None  # (3, H, W), None when the image is unusable
    width: int  # full image size, checked against CameraInfo
    height: int
    problem: tuple[str, str] | None = None  # (reason, message)


def prepare_camera_image(
    msg: Any, transport: str, cfg: InputConfig, expected: tuple[int, int] | None
) -> CameraImage:
    """Decode and prepare an image only if its declared size is ``expected`` (its CameraInfo's).

    Decoding and resizing cost what the declared size says (a tiny JPEG may declare 8x65500):
    the size is checked first, so an image of any other size is refused at the cost of its header.
    """
    if expected is None:
        return CameraImage(None, 0, 0, ("no_camera_info", "no CameraInfo received yet"))
    try:
        size = image_size(msg, transport)
        if size != expected:
            message = "image is {}x{} but CameraInfo says {}x{}".format(*size, *expected)
            return CameraImage(None, *size, ("size_mismatch", message))
        rgb, width, height = decode_image(msg, transport, cfg.width)
    except ImageDecodeError as err:
        return CameraImage(None, 0, 0, ("decode_error", str(err)))
    try:
        return CameraImage(prepare_image(rgb, width, height, cfg), width, height)
    except ValueError as err:
        return CameraImage(None, width, height, ("size_mismatch", str(err)))


@dataclass(frozen=True)
class RigCapture:
    """One synchronized rig frame as the cameras delivered it: the arguments of :func:`assemble`."""

    stamp_ns: int  # the anchor image's stamp: the frame's time (base_link then is the model frame)
    images: Mapping[str, CameraImage | None]  # None: no image from that camera within the sync window
    stamps_ns: Mapping[str, int]  # each delivering camera's capture stamp
    intrinsics: Mapping[str, CameraIntrinsics]
    extrinsics: Mapping[str, Transform]  # optical frame -> base_link per channel
    ego_pose: Callable[[int], Transform]  # stamp -> (base_link -> world)


def assemble(
    channels: Sequence[str],
    images: Mapping[str, CameraImage | None],
    stamps_ns: Mapping[str, int],
    anchor_stamp_ns: int,
    intrinsics: Mapping[str, CameraIntrinsics],
    extrinsics: Mapping[str, Transform],
    ego_pose: Callable[[int], Transform],
    cfg: InputConfig,
    min_cameras: int | None = None,
) -> FrameInputs:
    """Check the prepared images against the calibration and build lidar2img's inverse per camera.

    extrinsics: optical frame -> base_link per channel; ego_pose(stamp) -> base_link -> world.
    images: None for a camera the synchronizer had no image of. A camera that cannot be used
    (no image, no calibration or transform, a bad image) is left out of the frame (masked in the
    network) while at least ``min_cameras`` remain (None: every camera is required).
    Raises FrameError (never anything else for bad input) naming the camera and reason.
    """
    world_to_model = _ego(ego_pose, anchor_stamp_ns, None).inverse()
    missing: dict[str, FrameError] = {}
    prepared, Ks, cam_to_model, sizes = [], [], [], []
    for ch in channels:
        try:
            pixels, K, extrinsic, size = _camera(ch, images.get(ch), intrinsics, extrinsics)
            pose = world_to_model @ _ego(ego_pose, stamps_ns[ch], ch) @ extrinsic
        except FrameError as err:
            if err.channel is None:  # the ego pose stream's fault: no camera can do without it
                raise
            missing[ch] = err
            pixels, K, pose, size = _placeholder(cfg)
        prepared.append(pixels)
        Ks.append(K)
        cam_to_model.append(pose)
        sizes.append(size)
    _check_enough(channels, missing, min_cameras)
    lidar2img, img2lidar = camera_geometry(Ks, cam_to_model, sizes, cfg)
    cameras = np.array([ch not in missing for ch in channels])
    return FrameInputs(
        anchor_stamp_ns, np.stack(prepared), img2lidar, world_to_model.inverse(), lidar2img, cameras, missing
    )


def _camera(
    ch: str,
    image: CameraImage | None,
    intrinsics: Mapping[str, CameraIntrinsics],
    extrinsics: Mapping[str, Transform],
) -> tuple[NDArray[np.float32], NDArray[np.float64], Transform, tuple[int, int]]:
    """(pixels, K, optical -> base_link, image size) of a usable camera, else FrameError."""
    if image is None:
        raise FrameError("missing", ch, "no image within the sync window")
    info = intrinsics.get(ch)
    if info is None:
        raise FrameError("no_camera_info", ch, "no CameraInfo received yet")
    if ch not in extrinsics:
        raise FrameError("no_extrinsics", ch, f"no transform from base_link to {info.frame_id} yet")
    if image.problem is not None:
        raise FrameError(image.problem[0], ch, image.problem[1])
    if (image.width, image.height) != (info.width, info.height):
        message = f"image is {image.width}x{image.height} but CameraInfo says {info.width}x{info.height}"
        raise FrameError("size_mismatch", ch, message)
    assert image.pixels is not None
    return image.pixels, info.K, extrinsics[ch], (image.width, image.height)


def _placeholder(
    cfg: InputConfig,
) -> tuple[NDArray[np.float32], NDArray[np.float64], Transform, tuple[int, int]]:
    """Inputs for a camera left out: blank pixels and a finite, invertible geometry (the network
    masks the camera out, so neither reaches a prediction)."""
    w, h = cfg.width, cfg.height
    K = np.array([[w, 0.0, w / 2], [0.0, w, h / 2], [0.0, 0.0, 1.0]])
    return np.zeros((3, h, w), np.float32), K, Transform.identity(), (w, h)


def _check_enough(
    channels: Sequence[str], missing: Mapping[str, FrameError], min_cameras: int | None
) -> None:
    """FrameError for the first missing camera when fewer than ``min_cameras`` remain."""
    needed = len(channels) if min_cameras is None else min_cameras
    if missing and len(channels) - len(missing) < max(needed, 1):
        first = next(iter(missing.values()))
        if len(missing) == 1:
            raise first
        others = ", ".join(list(missing)[1:])
        raise FrameError(first.reason, first.channel, f"{first.message}; also without {others}")


def _ego(ego_pose: Callable[[int], Transform], stamp_ns: int, channel: str | None) -> Transform:
    try:
        return ego_pose(stamp_ns)
    except EgoPoseGapError as err:  # the pose stream's outage, not this camera's fault
        raise FrameError("ego_pose_gap", None, str(err)) from err
    except LookupError as err:  # the TF buffer's errors are LookupErrors
        raise FrameError("no_ego_pose", channel, f"no ego pose at {stamp_ns} ns: {err}") from err
