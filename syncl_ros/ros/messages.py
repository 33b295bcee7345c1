"""Conversions between ROS 2 messages and the package's types.

Stamps are integer nanoseconds; transforms are :class:`~syncl_ros.geometry.Transform`
(child -> parent, as in tf). Tracks (:class:`~syncl_ros.tracking.interface.Track`)
live in the model frame (base_link); they are published either there or in a
world frame, given the model -> output transform (the ego pose at the frame's
stamp). Errors on malformed input are ValueError (images: ImageDecodeError) with
a message that names the problem, so the node can log it and keep running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from geometry_msgs.msg import Transform as TransformMsg
from pyquaternion import Quaternion as PyQuaternion
from std_msgs.msg import Header

from syncl_ros.boxes import VX, VY, YAW, H, L, W, X, Y, Z
from syncl_ros.geometry import Transform, quaternion_yaw, yaw_quaternion
from syncl_ros.model.inputs import decode_reduction
from syncl_ros.msg import TrackedObject3D, TrackedObject3DArray
from syncl_ros.tracking.interface import Track

NS_PER_S = 1_000_000_000
_INT32 = 2**31

# ------------------------------------------------------------------- stamps


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> int ns."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """int ns -> builtin_interfaces/Time; nanosec stays in [0, 1e9) also for negative times."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    if not -_INT32 <= sec < _INT32:
        raise ValueError(f"stamp {stamp_ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
    return Time(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


# --------------------------------------------------------------- transforms


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} has non-finite values: {a.tolist()}")
    return a


def quaternion_from_msg(q: Any) -> PyQuaternion:
    """geometry_msgs Quaternion (x, y, z, w) -> unit pyquaternion (w, x, y, z)."""
    wxyz = _finite([q.w, q.x, q.y, q.z], "quaternion")
    norm = float(np.linalg.norm(wxyz))
    if norm < 1e-6:
        raise ValueError("quaternion has zero length (an unset orientation?)")
    return PyQuaternion(wxyz / norm)


def quaternion_to_msg(q: PyQuaternion) -> Quaternion:
    w, x, y, z = (float(v) for v in q.elements)
    return Quaternion(x=x, y=y, z=z, w=w)


def transform_from_msg(msg: Any) -> Transform:
    """geometry_msgs Transform -> Transform."""
    t = msg.translation
    return Transform(quaternion_from_msg(msg.rotation), _finite([t.x, t.y, t.z], "translation"))


def pose_from_msg(msg: Any) -> Transform:
    """geometry_msgs Pose (a frame's pose in its parent) -> Transform child -> parent."""
    p = msg.position
    return Transform(quaternion_from_msg(msg.orientation), _finite([p.x, p.y, p.z], "position"))


def transform_to_msg(transform: Transform) -> TransformMsg:
    x, y, z = (float(v) for v in transform.translation)
    return TransformMsg(translation=Vector3(x=x, y=y, z=z), rotation=quaternion_to_msg(transform.rotation))


def pose_to_msg(transform: Transform) -> Pose:
    x, y, z = (float(v) for v in transform.translation)
    return Pose(position=Point(x=x, y=y, z=z), orientation=quaternion_to_msg(transform.rotation))


@dataclass(frozen=True)
class StampedTransform:
    """One tf edge: ``transform`` maps ``child`` into ``parent`` at ``stamp_ns``."""

    parent: str
    child: str
    stamp_ns: int
    transform: Transform


def transform_stamped_to_tf(msg: Any) -> StampedTransform:
    """geometry_msgs TransformStamped -> StampedTransform."""
    transform = transform_from_msg(msg.transform)
    return StampedTransform(msg.header.frame_id, msg.child_frame_id, stamp_to_ns(msg.header.stamp), transform)


def tf_message_to_tf(msg: Any) -> tuple[list[StampedTransform], list[str]]:
    """tf2_msgs TFMessage -> (good transforms, one error text per malformed one)."""
    good: list[StampedTransform] = []
    errors: list[str] = []
    for ts in msg.transforms:
        try:
            good.append(transform_stamped_to_tf(ts))
        except ValueError as err:
            errors.append(f"{ts.header.frame_id!r} -> {ts.child_frame_id!r}: {err}")
    return good, errors


def odometry_to_tf(msg: Any) -> StampedTransform:
    """nav_msgs Odometry -> pose of child_frame_id (base) in header.frame_id (world)."""
    return StampedTransform(
        msg.header.frame_id, msg.child_frame_id, stamp_to_ns(msg.header.stamp), pose_from_msg(msg.pose.pose)
    )


# ------------------------------------------------------------------- tracks


@dataclass(frozen=True)
class OutputBoxes:
    """Track boxes expressed in the output frame, ready for messages."""

    centers: np.ndarray  # (N, 3)
    sizes: np.ndarray  # (N, 3) length, width, height
    yaws: np.ndarray  # (N,)
    velocities: np.ndarray  # (N, 3)


def boxes_in_output(tracks: Sequence[Track], to_output: Transform | None = None) -> OutputBoxes:
    """Boxes of ``tracks`` (model frame) mapped by ``to_output`` (model -> output frame; None: identity).

    Centers are transformed, velocities rotated (they are over ground already,
    only their axes change), and the heading is re-measured about the output
    z axis so boxes stay upright even when the ego pitches or rolls.
    """
    boxes = np.array([t.box for t in tracks], dtype=np.float64).reshape(-1, 9)
    centers = boxes[:, [X, Y, Z]]
    velocities = np.column_stack([boxes[:, VX], boxes[:, VY], np.zeros(len(boxes))])
    yaws = boxes[:, YAW].copy()
    if to_output is not None and len(boxes):
        centers = to_output.apply(centers)
        velocities = to_output.rotate(velocities)
        yaws = np.array([quaternion_yaw(to_output.rotation * yaw_quaternion(y)) for y in yaws])
    return OutputBoxes(centers, boxes[:, [L, W, H]], yaws, velocities)


def _pose(center: np.ndarray, yaw: float) -> Pose:
    return pose_to_msg(Transform(yaw_quaternion(yaw), center))


def _vector(v: np.ndarray) -> Vector3:
    x, y, z = (float(c) for c in v)
    return Vector3(x=x, y=y, z=z)


def _tracked_object(track: Track, boxes: OutputBoxes, i: int) -> TrackedObject3D:
    obj = TrackedObject3D()
    obj.track_id = int(track.track_id)
    obj.uuid.uuid = np.frombuffer(track.uuid, dtype=np.uint8).copy()
    obj.label = int(track.label)
    obj.class_name = track.class_name
    obj.score = float(track.score)
    obj.age, obj.hits = int(track.age), int(track.hits)
    obj.frames_since_update = int(track.frames_since_update)
    obj.pose = _pose(boxes.centers[i], float(boxes.yaws[i]))
    obj.size = _vector(boxes.sizes[i])
    obj.velocity = _vector(boxes.velocities[i])
    obj.has_covariance = False  # the model gives no uncertainty; the arrays stay zero
    return obj


def tracks_to_msg(
    tracks: Sequence[Track],
    stamp_ns: int,
    frame_id: str,
    to_output: Transform | None = None,
    cameras: Sequence[str] = (),
) -> TrackedObject3DArray:
    """Tracks -> syncl_ros/TrackedObject3DArray in ``frame_id`` (see :func:`boxes_in_output`);
    ``cameras``: the channels whose images the frame used."""
    boxes = boxes_in_output(tracks, to_output)
    msg = TrackedObject3DArray(header=make_header(stamp_ns, frame_id))
    msg.objects = [_tracked_object(t, boxes, i) for i, t in enumerate(tracks)]
    msg.cameras = list(cameras)
    return msg


def tracks_to_detections(
    tracks: Sequence[Track], stamp_ns: int, frame_id: str, to_output: Transform | None = None
) -> Any:
    """Tracks -> vision_msgs/Detection3DArray: id = track id, one hypothesis (class name, score)."""
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesisWithPose

    boxes = boxes_in_output(tracks, to_output)
    header = make_header(stamp_ns, frame_id)
    msg = Detection3DArray(header=header)
    for i, track in enumerate(tracks):
        pose = _pose(boxes.centers[i], float(boxes.yaws[i]))
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = track.class_name
        hypothesis.hypothesis.score = float(track.score)
        hypothesis.pose.pose = pose
        det = Detection3D(header=header, id=str(track.track_id), results=[hypothesis])
        det.bbox = BoundingBox3D(center=pose, size=_vector(boxes.sizes[i]))
        msg.detections.append(det)
    return msg


# ------------------------------------------------------------------- images


class ImageDecodeError(ValueError):
    """An image message cannot be turned into pixels."""


@dataclass(frozen=True)
class CameraIntrinsics:
    K: np.ndarray  # (3, 3)
    width: int
    height: int
    frame_id: str


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """sensor_msgs CameraInfo -> K (3x3), size and frame; refuses an uncalibrated (all-zero) K."""
    K = _finite(list(msg.k), "CameraInfo.k").reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] == 0:
        raise ValueError(f"CameraInfo of {msg.header.frame_id!r} is not calibrated: K = {K.tolist()}")
    if msg.width <= 0 or msg.height <= 0:
        size = f"{msg.width}x{msg.height}"
        raise ValueError(f"CameraInfo of {msg.header.frame_id!r} has no image size ({size})")
    return CameraIntrinsics(K / K[2, 2], int(msg.width), int(msg.height), msg.header.frame_id)


_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers hold the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (h, w, 3) uint8
    reduction: int  # 1, 2, 4 or 8: full size divided by this (rounded up)
    full_width: int
    full_height: int


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG frame header, without decoding."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageDecodeError(f"corrupt JPEG: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:
            break
        i += 2 + length
    raise ImageDecodeError("corrupt JPEG: no frame header (SOF) before the image data")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageDecodeError("corrupt PNG: no IHDR header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _kind(fmt: str, data: bytes) -> str:
    """'jpeg' or 'png' from the bytes, checked against the message's format string."""
    fmt = fmt.lower()
    if "compresseddepth" in fmt:
        raise ImageDecodeError(f"unsupported CompressedImage format {fmt!r} (depth images)")
    claimed = "jpeg" if ("jpeg" in fmt or "jpg" in fmt) else "png" if "png" in fmt else None
    if fmt.strip() and claimed is None:
        raise ImageDecodeError(f"unsupported CompressedImage format {fmt!r}; supported: jpeg, png")
    found = "jpeg" if data.startswith(_JPEG_SOI) else "png" if data.startswith(_PNG_SIGNATURE) else None
    if found is None:
        what = claimed or "JPEG or PNG"
        raise ImageDecodeError(f"corrupt image: {len(data)} bytes that do not start like {what}")
    if claimed is not None and claimed != found:
        raise ImageDecodeError(f"format says {claimed} but the data is {found}")
    return found


def compressed_image_size(msg: Any) -> tuple[int, int]:
    """(width, height) of a CompressedImage from its JPEG or PNG header, without decoding it."""
    data = bytes(msg.data)
    kind = _kind(msg.format, data)
    return _jpeg_size(data) if kind == "jpeg" else _png_size(data)


def decode_compressed_image(msg: Any, min_width: int | None = None) -> DecodedImage:
    """sensor_msgs CompressedImage (JPEG or PNG) -> RGB, decoded at a reduced scale when allowed.

    Decoding a JPEG at 1/2, 1/4 or 1/8 scale skips most of the inverse DCT
    work; the factor keeps the decoded width >= ``min_width`` (e.g. the
    network's input width) so no detail the model uses is lost. The cost
    follows the size in the header: check it (:func:`compressed_image_size`)
    before decoding an image from an untrusted source.
    """
    data = bytes(msg.data)
    kind = _kind(msg.format, data)
    if kind == "jpeg" and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        raise ImageDecodeError(f"corrupt JPEG: truncated ({len(data)} bytes, no end-of-image marker)")
    width, height = _jpeg_size(data) if kind == "jpeg" else _png_size(data)
    factor = decode_reduction(width, min_width)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _REDUCED_FLAGS[factor])
    if bgr is None or bgr.ndim != 3:
        raise ImageDecodeError(f"corrupt {kind}: OpenCV could not decode {len(data)} bytes")
    return DecodedImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), factor, width, height)


_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs Image (rgb8, bgr8, mono8) -> (h, w, 3) uint8 RGB copy."""
    encoding = msg.encoding.lower()
    if encoding not in _CHANNELS:
        supported = ", ".join(_CHANNELS)
        raise ImageDecodeError(f"unsupported image encoding {msg.encoding!r}; supported: {supported}")
    channels = _CHANNELS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageDecodeError(f"empty image ({w}x{h})")
    if step < w * channels:
        row = w * channels
        raise ImageDecodeError(f"step {step} is shorter than a {encoding} row of {w} pixels ({row} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * h:
        expected = f"step * height = {step} * {h} = {step * h}"
        raise ImageDecodeError(f"data has {data.size} bytes, expected {expected}")
    pixels = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    return np.repeat(pixels, 3, axis=2)


# -------------------------------------------------------------- diagnostics

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # DiagnosticStatus levels


def flatten_stats(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts -> ("a.b.c", text) pairs; floats get 3 decimals, None reads 'n/a'."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(flatten_stats(value, prefix=f"{name}."))
        elif value is None:
            pairs.append((name, "n/a"))
        elif isinstance(value, float):
            pairs.append((name, f"{value:.3f}"))
        else:
            pairs.append((name, str(value)))
    return pairs


def diagnostic_status(
    name: str, values: Mapping[str, Any], level: int = OK, message: str = "", hardware_id: str = ""
) -> DiagnosticStatus:
    """One DiagnosticStatus with a KeyValue per (flattened) stat."""
    if level not in (OK, WARN, ERROR, STALE):
        raise ValueError(f"diagnostic level must be 0..3, got {level}")
    return DiagnosticStatus(
        level=bytes([level]),  # a `byte` field: rclpy wants a length-1 bytes
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in flatten_stats(values)],
    )


def diagnostic_array(stamp_ns: int, statuses: Iterable[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=make_header(stamp_ns, ""), status=list(statuses))


def msg_to_boxes(msg: Any) -> np.ndarray:
    """TrackedObject3DArray -> boxes (N, 9) [x, y, z, l, w, h, yaw, vx, vy] in the header frame."""
    rows = []
    for o in msg.objects:
        p = o.pose.position
        yaw = quaternion_yaw(quaternion_from_msg(o.pose.orientation))
        rows.append([p.x, p.y, p.z, o.size.x, o.size.y, o.size.z, yaw, o.velocity.x, o.velocity.y])
    return np.array(rows, dtype=np.float64).reshape(-1, 9)
