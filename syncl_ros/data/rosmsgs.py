"""ROS 2 messages without a ROS install: a rosbags typestore and message builders.

The typestore holds the ROS 2 Jazzy message types plus syncl_ros' own
messages, parsed from the package's ``msg/*.msg`` files so that the bag's
schemas and type hashes are those that rosidl generates for them. The
builders return rosbags message objects, ready for ``serialize``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

import syncl_ros
from syncl_ros.geometry import Transform

PACKAGE = "syncl_ros"
CUSTOM_MESSAGES = ("TrackedObject3D", "TrackedObject3DArray")

COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
ODOMETRY = "nav_msgs/msg/Odometry"
CLOCK = "rosgraph_msgs/msg/Clock"
TRACKED_OBJECT = f"{PACKAGE}/msg/TrackedObject3D"
TRACKED_OBJECT_ARRAY = f"{PACKAGE}/msg/TrackedObject3DArray"

_NS_PER_S = 1_000_000_000
# A zero duration means "not set" for deadline, lifespan and lease, i.e. infinite.
_UNSET = QosTime(0, 0)


def _ament_msg_dir() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return None
    try:
        share = Path(get_package_share_directory(PACKAGE))
    # PackageNotFoundError derives from KeyError; OSError: no AMENT_PREFIX_PATH.
    except (KeyError, LookupError, ValueError, OSError):
        return None
    found = share / "msg"
    return found if found.is_dir() else None


def _has_messages(folder: Path) -> bool:
    return all((folder / f"{name}.msg").is_file() for name in CUSTOM_MESSAGES)


def msg_dir() -> Path:
    """Folder of syncl_ros' ``*.msg`` files.

    Order: the source checkout; ``sys.prefix/share`` (pip or the development
    venv); the ament share directory (colcon install).
    """
    candidates = [
        Path(syncl_ros.__file__).resolve().parents[1] / "msg",
        Path(sys.prefix) / "share" / PACKAGE / "msg",
    ]
    for folder in candidates:
        if _has_messages(folder):
            return folder
    ament = _ament_msg_dir()
    if ament is not None and _has_messages(ament):
        return ament
    looked = ", ".join(str(c) for c in candidates)
    names = ", ".join(CUSTOM_MESSAGES)
    raise FileNotFoundError(f"no {PACKAGE} message definitions ({names}); looked in {looked}")


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """ROS 2 Jazzy types plus syncl_ros' messages (built once)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    folder = msg_dir()
    types: dict[str, Any] = {}
    for name in CUSTOM_MESSAGES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    store.register(types)
    return store


def serialize(message: object) -> bytes:
    """CDR bytes of a typestore message, as rclpy publishes them."""
    store = typestore()
    return bytes(store.serialize_cdr(message, message.__msgtype__))  # type: ignore[attr-defined]


def _new(typename: str, **fields: Any) -> Any:
    return typestore().types[typename](**fields)


# ----------------------------------------------------------------------- QoS


def offered_qos(depth: int, latched: bool = False) -> Qos:
    """Reliable keep-last publisher QoS; ``latched`` makes it transient-local like /tf_static.

    ``ros2 bag play`` offers a topic with the durability recorded here, so a
    transient-local /tf_static reaches late subscribers as the static tf
    broadcaster's does.
    """
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        _UNSET,
        _UNSET,
        QosLiveliness.AUTOMATIC,
        _UNSET,
        False,
    )


# ------------------------------------------------------------------ builders


def time_msg(stamp_ns: int) -> Any:
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    return _new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    return _new("std_msgs/msg/Header", stamp=time_msg(stamp_ns), frame_id=frame_id)


def vector3(xyz: Sequence[float] | NDArray[np.float64]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return _new("geometry_msgs/msg/Vector3", x=x, y=y, z=z)


def point(xyz: Sequence[float] | NDArray[np.float64]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return _new("geometry_msgs/msg/Point", x=x, y=y, z=z)


def quaternion(wxyz: Sequence[float] | NDArray[np.float64]) -> Any:
    """geometry_msgs Quaternion from (w, x, y, z), the order nuScenes and pyquaternion use."""
    w, x, y, z = (float(v) for v in wxyz)
    return _new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def pose(transform: Transform) -> Any:
    return _new(
        "geometry_msgs/msg/Pose",
        position=point(transform.translation),
        orientation=quaternion(transform.rotation.elements),
    )


def transform_stamped(stamp_ns: int, parent: str, child: str, transform: Transform) -> Any:
    """Child frame -> parent frame, i.e. the pose of ``child`` in ``parent``."""
    tf = _new(
        "geometry_msgs/msg/Transform",
        translation=vector3(transform.translation),
        rotation=quaternion(transform.rotation.elements),
    )
    return _new(
        "geometry_msgs/msg/TransformStamped",
        header=header(stamp_ns, parent),
        child_frame_id=child,
        transform=tf,
    )


def tf_message(transforms: Sequence[Any]) -> Any:
    return _new(TF_MESSAGE, transforms=list(transforms))


def compressed_image(stamp_ns: int, frame_id: str, data: bytes, fmt: str = "jpeg") -> Any:
    return _new(
        COMPRESSED_IMAGE,
        header=header(stamp_ns, frame_id),
        format=fmt,
        data=np.frombuffer(data, dtype=np.uint8),
    )


def camera_info(stamp_ns: int, frame_id: str, width: int, height: int, K: ArrayLike) -> Any:
    """Undistorted pinhole camera: D = 0 (plumb_bob), R = I, P = [K | 0]."""
    k = np.asarray(K, dtype=np.float64).reshape(3, 3)
    p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    roi = _new(
        "sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return _new(
        CAMERA_INFO,
        header=header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(9).copy(),
        r=np.eye(3).reshape(9),
        p=p.reshape(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def odometry(
    stamp_ns: int,
    frame_id: str,
    child_frame_id: str,
    body_to_world: Transform,
    linear: NDArray[np.float64],
    angular: NDArray[np.float64],
) -> Any:
    """Pose in ``frame_id``; twist (linear, angular) expressed in ``child_frame_id`` as REP-105 asks."""
    twist = _new("geometry_msgs/msg/Twist", linear=vector3(linear), angular=vector3(angular))
    return _new(
        ODOMETRY,
        header=header(stamp_ns, frame_id),
        child_frame_id=child_frame_id,
        pose=_new("geometry_msgs/msg/PoseWithCovariance", pose=pose(body_to_world), covariance=np.zeros(36)),
        twist=_new("geometry_msgs/msg/TwistWithCovariance", twist=twist, covariance=np.zeros(36)),
    )


def clock(stamp_ns: int) -> Any:
    return _new(CLOCK, clock=time_msg(stamp_ns))


def tracked_object(
    *,
    track_id: int,
    uuid: bytes,
    label: int,
    class_name: str,
    score: float,
    age: int,
    hits: int,
    box_pose: Transform,
    size_lwh: Sequence[float] | NDArray[np.float64],
    velocity: Sequence[float] | NDArray[np.float64],
) -> Any:
    """One TrackedObject3D without covariance (has_covariance false, arrays zero)."""
    if len(uuid) != 16:
        raise ValueError(f"uuid must be 16 bytes, got {len(uuid)}")
    return _new(
        TRACKED_OBJECT,
        track_id=int(track_id),
        uuid=_new("unique_identifier_msgs/msg/UUID", uuid=np.frombuffer(uuid, dtype=np.uint8).copy()),
        label=int(label),
        class_name=class_name,
        score=float(score),
        age=int(age),
        hits=int(hits),
        frames_since_update=0,
        pose=pose(box_pose),
        size=vector3(size_lwh),
        velocity=vector3(velocity),
        has_covariance=False,
        pose_covariance=np.zeros(36),
        velocity_covariance=np.zeros(9),
    )


def tracked_object_array(stamp_ns: int, frame_id: str, objects: Sequence[Any]) -> Any:
    # Ground truth comes from no camera frame: its camera list stays empty.
    return _new(TRACKED_OBJECT_ARRAY, header=header(stamp_ns, frame_id), objects=list(objects), cameras=[])
