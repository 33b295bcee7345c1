"""Conversions between ROS 2 messages and the package's types.

Stamps are integer nanoseconds; transforms are :class:`~syncl_ros.geometry.Transform`
(child -> parent, as in tf). Tracks (:class:`~syncl_ros.tracking.interface.Track`)
live in the model frame (base_link); they are published either there or in a
world frame, given the model -> output transform (the ego pose at the frame's
stamp). Errors on malformed input are ValueError with a message that names the
problem, so the node can log it and keep running. Image decoding is the pipeline's
(:mod:`syncl_ros.pipeline.images`): it needs no message package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from geometry_msgs.msg import Transform as TransformMsg
from numpy.typing import NDArray
from pyquaternion import Quaternion as PyQuaternion
from std_msgs.msg import Header

from syncl_ros.boxes import VX, VY, YAW, H, L, W, X, Y, Z
from syncl_ros.geometry import Transform, quaternion_yaw, yaw_quaternion
from syncl_ros.msg import TrackedObject3D, TrackedObject3DArray
from syncl_ros.pipeline.frame_inputs import CameraIntrinsics
from syncl_ros.pipeline.tf_buffer import StampedTransform
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


def _finite(values: Sequence[float], what: str) -> NDArray[np.float64]:
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

    centers: NDArray[np.float64]  # (N, 3)
    sizes: NDArray[np.float64]  # (N, 3) length, width, height
    yaws: NDArray[np.float64]  # (N,)
    velocities: NDArray[np.float64]  # (N, 3)


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


def _pose(center: NDArray[np.float64], yaw: float) -> Pose:
    return pose_to_msg(Transform(yaw_quaternion(yaw), center))


def _vector(v: NDArray[np.float64]) -> Vector3:
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


# ------------------------------------------------------------ calibration


def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """sensor_msgs CameraInfo -> K (3x3), size and frame; refuses an uncalibrated (all-zero) K."""
    K = _finite(list(msg.k), "CameraInfo.k").reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] == 0:
        raise ValueError(f"CameraInfo of {msg.header.frame_id!r} is not calibrated: K = {K.tolist()}")
    if msg.width <= 0 or msg.height <= 0:
        size = f"{msg.width}x{msg.height}"
        raise ValueError(f"CameraInfo of {msg.header.frame_id!r} has no image size ({size})")
    return CameraIntrinsics(K / K[2, 2], int(msg.width), int(msg.height), msg.header.frame_id)


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


def msg_to_boxes(msg: Any) -> NDArray[np.float64]:
    """TrackedObject3DArray -> boxes (N, 9) [x, y, z, l, w, h, yaw, vx, vy] in the header frame."""
    rows = []
    for o in msg.objects:
        p = o.pose.position
        yaw = quaternion_yaw(quaternion_from_msg(o.pose.orientation))
        rows.append([p.x, p.y, p.z, o.size.x, o.size.y, o.size.z, yaw, o.velocity.x, o.velocity.y])
    return np.array(rows, dtype=np.float64).reshape(-1, 9)
