"""Convert one nuScenes-format scene into a rosbag2 bag that ``ros2 bag play`` can play.

The bag (MCAP by default, or sqlite3) holds every camera sweep of the scene,
not only the annotated key frames. Default topics, where ``{channel}`` is the
nuScenes channel name (e.g. ``CAM_FRONT``):

- ``/{channel}/image_rect_compressed`` (sensor_msgs/msg/CompressedImage):
  every sweep, the dataset's JPEG bytes unchanged, format "jpeg";
- ``/{channel}/camera_info`` (sensor_msgs/msg/CameraInfo): with every image;
  K from calibrated_sensor, P = [K | 0], R = I, plumb_bob with D = 0
  (nuScenes images are undistorted);
- ``/tf_static`` (tf2_msgs/msg/TFMessage): once at the start, offered
  transient-local (latched): base_link -> each camera optical frame and
  lidar_top;
- ``/tf`` (tf2_msgs/msg/TFMessage): map -> base_link at every distinct
  ego-pose stamp of the camera and lidar records;
- ``/odom`` (nav_msgs/msg/Odometry): map -> base_link with the same poses,
  twist in base_link from central differences;
- ``/clock`` (rosgraph_msgs/msg/Clock): 100 Hz and at every message stamp;
- ``/ground_truth/tracks`` (syncl_ros/msg/TrackedObject3DArray): every key
  frame (sample), boxes in map.

Frames: ``map`` (the nuScenes global frame), ``base_link`` (the ego pose),
camera optical frames ``<channel lower-cased>_optical`` (e.g.
``cam_front_optical``; nuScenes camera frames already are optical frames)
and ``lidar_top``. Static transforms are the calibrated_sensor records as
nuScenes stores them.

Timing: every header stamp is the dataset's capture time (microseconds ->
nanoseconds) and every message is logged at its header stamp, so playback
follows capture order. /clock ticks at each message stamp before that
message, so a sim-time subscriber never sees a message from its future.

Ground truth: one TrackedObject3D per annotation of a detection class
(annotations of other categories are skipped and counted); ``track_id`` is
1, 2, ... in order of first appearance in the scene, ``uuid`` the instance
token's 16 bytes (a UUID v5 of it for tokens that are not 32 hex digits),
``age``/``hits`` count the instance's key frames.

The bag is written to ``BAG.partial`` and renamed to ``BAG`` only when it is
complete; an existing ``BAG`` is replaced only with ``overwrite``, and is
renamed aside before the new one moves in, so a kill at any moment leaves the
old bag or the new one at ``BAG``, never a half-deleted one. A rerun removes
what a killed run left (``BAG.partial``, a bag set aside).
"""

from __future__ import annotations

import bisect
import math
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pyquaternion import Quaternion
from rosbags.interfaces import Qos
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from syncl_ros.atomic import remove_stale_partials, replace_dir
from syncl_ros.boxes import VX, VY, YAW, H, L, W, X, Y, Z, from_nuscenes
from syncl_ros.classes import DETECTION_CLASSES, label_of_category
from syncl_ros.data import rosmsgs
from syncl_ros.data.tables import require_tables
from syncl_ros.geometry import Transform, yaw_quaternion
from syncl_ros.rig import CAMERA_CHANNELS

WORLD_FRAME = "map"
BASE_FRAME = "base_link"
LIDAR_CHANNEL = "LIDAR_TOP"
DEFAULT_CLOCK_HZ = 100.0
DEFAULT_VERSION = "v1.0-trainval"
STORAGES = ("mcap", "sqlite3")
Storage = Literal["mcap", "sqlite3"]

# Ego poses of staggered cameras lie milliseconds apart; differencing poses
# at least this far apart keeps localisation noise out of the odometry twist.
_TWIST_BASELINE_NS = 50_000_000
# Namespace for instance tokens that are not 32 hex digits (non-nuScenes data).
_UUID_NAMESPACE = uuid.UUID("6f1b3c1e-9a52-4c8e-8d7e-3b2f5f0c9a11")
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class ConvertError(RuntimeError):
    """The scene cannot be converted (missing files, inconsistent tables, unknown scene)."""


@dataclass(frozen=True)
class TopicNames:
    """Topic names; ``image`` and ``camera_info`` are templates over ``{channel}``."""

    image: str = "/{channel}/image_rect_compressed"
    camera_info: str = "/{channel}/camera_info"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    odom: str = "/odom"
    clock: str = "/clock"
    tracks: str = "/ground_truth/tracks"

    def __post_init__(self) -> None:
        for name in ("image", "camera_info"):
            if "{channel}" not in getattr(self, name):
                raise ValueError(f"topic template {name}={getattr(self, name)!r} must contain '{{channel}}'")

    def image_topic(self, channel: str) -> str:
        return self.image.format(channel=channel)

    def camera_info_topic(self, channel: str) -> str:
        return self.camera_info.format(channel=channel)


@dataclass
class ConvertStats:
    """What a conversion wrote."""

    scene: str
    out: Path
    storage: str
    messages: dict[str, int] = field(default_factory=dict)  # per topic
    bytes: int = 0  # size of the bag on disk
    seconds: float = 0.0  # wall time of the conversion
    duration_s: float = 0.0  # span of the message stamps
    skipped_annotations: int = 0  # annotations outside the ten detection classes

    @property
    def total_messages(self) -> int:
        return sum(self.messages.values())


def frame_id_of(channel: str) -> str:
    """tf frame of a nuScenes channel; cameras get their optical frame: CAM_FRONT -> cam_front_optical."""
    lower = channel.lower()
    return f"{lower}_optical" if channel.startswith("CAM") else lower


def instance_uuid(instance_token: str) -> bytes:
    """16 bytes naming an instance: a nuScenes token is 32 hex digits, i.e. exactly a UUID."""
    try:
        raw = bytes.fromhex(instance_token)
    except ValueError:
        raw = b""
    return raw if len(raw) == 16 else uuid.uuid5(_UUID_NAMESPACE, instance_token).bytes


# --------------------------------------------------------------- scene tables


@dataclass(frozen=True)
class _Sensor:
    channel: str
    frame_id: str
    to_base: Transform
    K: NDArray[np.float64] | None  # cameras only


@dataclass(frozen=True)
class _Sweep:
    channel: str
    stamp_ns: int
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class _Annotation:
    instance: str
    label: int
    box: NDArray[np.float64]  # (9,) [x, y, z, l, w, h, yaw, vx, vy] in map


@dataclass
class _Scene:
    name: str
    sensors: list[_Sensor]
    sweeps: list[_Sweep]
    ego: list[tuple[int, Transform]]  # (stamp_ns, base_link -> map), time-ordered, unique stamps
    keyframes: list[tuple[int, list[_Annotation]]]
    skipped_annotations: int


def _us_to_ns(us: int) -> int:
    return int(us) * 1000


def _find_scene(nusc: Any, name: str) -> dict[str, Any]:
    for scene in nusc.scene:
        if scene["name"] == name:
            return dict(scene)
    names = sorted(s["name"] for s in nusc.scene)
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    raise ConvertError(f"no scene {name!r} in {nusc.version} at {nusc.dataroot} (have: {shown or 'none'})")


def _channel_records(nusc: Any, scene: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    """Every sample_data of ``channel`` in the scene, key frames and sweeps, in time order.

    The per-channel prev/next chain may run into neighbouring scenes of the
    same log, so membership is decided by the record's sample.
    """

    def in_scene(record: dict[str, Any]) -> bool:
        return bool(nusc.get("sample", record["sample_token"])["scene_token"] == scene["token"])

    first_sample = nusc.get("sample", scene["first_sample_token"])
    record = nusc.get("sample_data", first_sample["data"][channel])
    while record["prev"] and in_scene(prev := nusc.get("sample_data", record["prev"])):
        record = prev
    records = [record]
    while record["next"] and in_scene(nxt := nusc.get("sample_data", record["next"])):
        record = nxt
        records.append(record)
    return sorted(records, key=lambda r: int(r["timestamp"]))


def _modality(nusc: Any, record: dict[str, Any]) -> str:
    calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    return str(nusc.get("sensor", calib["sensor_token"])["modality"])


def _scene_channels(nusc: Any, scene: dict[str, Any]) -> tuple[list[str], bool]:
    """Camera channels (nuScenes rig order first) and whether LIDAR_TOP is present."""
    data = nusc.get("sample", scene["first_sample_token"])["data"]
    cameras = [c for c in data if _modality(nusc, nusc.get("sample_data", data[c])) == "camera"]
    order = {c: i for i, c in enumerate(CAMERA_CHANNELS)}
    cameras.sort(key=lambda c: (order.get(c, len(order)), c))
    if not cameras:
        raise ConvertError(f"scene {scene['name']!r} has no camera channel")
    return cameras, LIDAR_CHANNEL in data


def _same_values(a: Sequence[Any], b: Sequence[Any]) -> bool:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.allclose(x, y))


def _static_sensor(nusc: Any, channel: str, records: Sequence[dict[str, Any]]) -> _Sensor:
    """The channel's mounting, which /tf_static can carry only if it is constant over the scene."""
    tokens = {r["calibrated_sensor_token"] for r in records}
    calibs = [nusc.get("calibrated_sensor", t) for t in sorted(tokens)]
    first = calibs[0]
    for other in calibs[1:]:
        keys = ("translation", "rotation", "camera_intrinsic")
        if not all(_same_values(other[key], first[key]) for key in keys):
            raise ConvertError(f"{channel}: calibration changes within the scene; /tf_static cannot hold it")
    intrinsic = first["camera_intrinsic"]
    K = np.asarray(intrinsic, dtype=np.float64).reshape(3, 3) if intrinsic else None
    to_base = Transform.from_tq(first["translation"], first["rotation"])
    return _Sensor(channel, frame_id_of(channel), to_base, K)


def _sweep(dataroot: Path, channel: str, record: dict[str, Any]) -> _Sweep:
    return _Sweep(
        channel=channel,
        stamp_ns=_us_to_ns(record["timestamp"]),
        path=dataroot / record["filename"],
        width=int(record["width"]),
        height=int(record["height"]),
    )


def _ego_poses(nusc: Any, records: Iterable[dict[str, Any]]) -> list[tuple[int, Transform]]:
    """One base_link -> map pose per distinct ego-pose stamp, in time order."""
    by_stamp: dict[int, Transform] = {}
    for record in records:
        ego = nusc.get("ego_pose", record["ego_pose_token"])
        pose = Transform.from_tq(ego["translation"], ego["rotation"])
        by_stamp.setdefault(_us_to_ns(ego["timestamp"]), pose)
    return sorted(by_stamp.items(), key=lambda item: item[0])


def _category(nusc: Any, ann: dict[str, Any]) -> str:
    if "category_name" in ann:  # added by the devkit's reverse index
        return str(ann["category_name"])
    instance = nusc.get("instance", ann["instance_token"])
    return str(nusc.get("category", instance["category_token"])["name"])


def _keyframes(nusc: Any, scene: dict[str, Any]) -> tuple[list[tuple[int, list[_Annotation]]], int]:
    """Annotated boxes of every sample of the scene, and the count of non-detection annotations."""
    frames: list[tuple[int, list[_Annotation]]] = []
    skipped = 0
    token = scene["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        annotations = []
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            label = label_of_category(_category(nusc, ann))
            if label is None:
                skipped += 1
                continue
            velocity = nusc.box_velocity(ann_token)[:2]  # nan where unknown; from_nuscenes makes it 0
            box = from_nuscenes(ann["translation"], ann["size"], ann["rotation"], velocity)
            annotations.append(_Annotation(ann["instance_token"], label, box))
        frames.append((_us_to_ns(sample["timestamp"]), annotations))
        token = sample["next"]
    return frames, skipped


def _load_scene(nusc: Any, scene_name: str) -> _Scene:
    scene = _find_scene(nusc, scene_name)
    cameras, has_lidar = _scene_channels(nusc, scene)
    dataroot = Path(nusc.dataroot)
    sensors: list[_Sensor] = []
    sweeps: list[_Sweep] = []
    pose_records: list[dict[str, Any]] = []
    for channel in [*cameras, *([LIDAR_CHANNEL] if has_lidar else [])]:
        records = _channel_records(nusc, scene, channel)
        sensor = _static_sensor(nusc, channel, records)
        if channel in cameras and sensor.K is None:
            raise ConvertError(f"{channel}: calibrated_sensor has no camera_intrinsic")
        sensors.append(sensor)
        pose_records.extend(records)
        if channel in cameras:
            sweeps.extend(_sweep(dataroot, channel, r) for r in records)
    keyframes, skipped = _keyframes(nusc, scene)
    return _Scene(scene_name, sensors, sweeps, _ego_poses(nusc, pose_records), keyframes, skipped)


def _check_images(sweeps: Sequence[_Sweep]) -> None:
    missing = [s.path for s in sweeps if not s.path.is_file()]
    if missing:
        raise ConvertError(f"{len(missing)} of {len(sweeps)} camera images are missing, e.g. {missing[0]}")


# ----------------------------------------------------------------- kinematics


def _rotation_vector(q: Quaternion) -> NDArray[np.float64]:
    """Axis * angle of a rotation, taking the short way round."""
    if q.w < 0.0:
        q = -q
    v = q.vector
    norm = float(np.linalg.norm(v))
    if norm < 1e-15:
        return np.zeros(3)
    return np.asarray(v / norm * 2.0 * math.atan2(norm, q.w))


def ego_twists(ego: Sequence[tuple[int, Transform]]) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Body-frame (linear, angular) velocity at each pose by central differences.

    The neighbours are the nearest poses at least half the baseline away on
    each side (one-sided at the ends of the scene).
    """
    stamps = [t for t, _ in ego]
    half = _TWIST_BASELINE_NS // 2
    twists = []
    for i, (t, pose) in enumerate(ego):
        a = max(0, min(i, bisect.bisect_right(stamps, t - half) - 1))
        b = min(len(ego) - 1, max(i, bisect.bisect_left(stamps, t + half)))
        if a == b:
            twists.append((np.zeros(3), np.zeros(3)))
            continue
        dt = (stamps[b] - stamps[a]) * 1e-9
        pa, pb = ego[a][1], ego[b][1]
        linear = pose.rotation.inverse.rotate(pb.translation - pa.translation) / dt
        angular = _rotation_vector(pa.rotation.inverse * pb.rotation) / dt
        twists.append((np.asarray(linear), angular))
    return twists


# ------------------------------------------------------------------- messages

# Order of messages that share a stamp: the clock first, then tf, then data.
_RANK_CLOCK, _RANK_TF_STATIC, _RANK_TF, _RANK_ODOM, _RANK_INFO, _RANK_IMAGE, _RANK_TRACKS = range(7)


@dataclass(order=True)
class _Event:
    stamp_ns: int
    rank: int
    seq: int
    topic: str = field(compare=False)
    payload: Callable[[], bytes] = field(compare=False)  # lazy: JPEGs are read one at a time


def _image_payload(sweep: _Sweep, frame_id: str) -> bytes:
    try:
        data = sweep.path.read_bytes()
    except OSError as err:
        raise ConvertError(f"cannot read {sweep.path}: {err}") from err
    return rosmsgs.serialize(rosmsgs.compressed_image(sweep.stamp_ns, frame_id, data))


def _info_payload(sweep: _Sweep, sensor: _Sensor) -> bytes:
    assert sensor.K is not None
    msg = rosmsgs.camera_info(sweep.stamp_ns, sensor.frame_id, sweep.width, sweep.height, sensor.K)
    return rosmsgs.serialize(msg)


def _tf_payload(stamp_ns: int, pose: Transform) -> bytes:
    tf = rosmsgs.transform_stamped(stamp_ns, WORLD_FRAME, BASE_FRAME, pose)
    return rosmsgs.serialize(rosmsgs.tf_message([tf]))


def _odom_payload(
    stamp_ns: int, pose: Transform, twist: tuple[NDArray[np.float64], NDArray[np.float64]]
) -> bytes:
    msg = rosmsgs.odometry(stamp_ns, WORLD_FRAME, BASE_FRAME, pose, *twist)
    return rosmsgs.serialize(msg)


def _static_payload(stamp_ns: int, sensors: Sequence[_Sensor]) -> bytes:
    transforms = [rosmsgs.transform_stamped(stamp_ns, BASE_FRAME, s.frame_id, s.to_base) for s in sensors]
    return rosmsgs.serialize(rosmsgs.tf_message(transforms))


def _clock_payload(stamp_ns: int) -> bytes:
    return rosmsgs.serialize(rosmsgs.clock(stamp_ns))


class _TrackBook:
    """Per-instance track id, first key frame and hit count over the scene."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.born: dict[str, int] = {}
        self.hits: dict[str, int] = {}

    def observe(self, instance: str, frame: int) -> tuple[int, int, int]:
        """(track_id, age, hits) of ``instance`` seen at key frame ``frame``."""
        track_id = self.ids.setdefault(instance, len(self.ids) + 1)
        born = self.born.setdefault(instance, frame)
        self.hits[instance] = self.hits.get(instance, 0) + 1
        return track_id, frame - born, self.hits[instance]


def _tracks_payloads(keyframes: Sequence[tuple[int, list[_Annotation]]]) -> list[tuple[int, bytes]]:
    """Serialized ground truth per key frame; built eagerly because age and hits run over the scene."""
    book = _TrackBook()
    out = []
    for frame, (stamp_ns, frame_annotations) in enumerate(keyframes):
        objects = []
        for ann in frame_annotations:
            track_id, age, hits = book.observe(ann.instance, frame)
            b = ann.box
            objects.append(
                rosmsgs.tracked_object(
                    track_id=track_id,
                    uuid=instance_uuid(ann.instance),
                    label=ann.label,
                    class_name=DETECTION_CLASSES[ann.label],
                    score=1.0,
                    age=age,
                    hits=hits,
                    box_pose=Transform(yaw_quaternion(b[YAW]), b[[X, Y, Z]]),
                    size_lwh=b[[L, W, H]],
                    velocity=(b[VX], b[VY], 0.0),
                )
            )
        msg = rosmsgs.tracked_object_array(stamp_ns, WORLD_FRAME, objects)
        out.append((stamp_ns, rosmsgs.serialize(msg)))
    return out


def _clock_stamps(stamps: Sequence[int], clock_hz: float) -> list[int]:
    """Every message stamp plus a regular grid at ``clock_hz`` over the scene (grid off if <= 0)."""
    first, last = min(stamps), max(stamps)
    ticks = set(stamps)
    if clock_hz > 0:
        period = round(1e9 / clock_hz)
        ticks.update(range(first, last + 1, period))
    return sorted(ticks)


def _plan(scene: _Scene, topics: TopicNames, clock_hz: float) -> list[_Event]:
    """All messages of the bag, in the order they are written (log time = header stamp)."""
    sensors = {s.channel: s for s in scene.sensors}
    events: list[_Event] = []

    def add(stamp_ns: int, rank: int, topic: str, payload: Callable[[], bytes]) -> None:
        events.append(_Event(stamp_ns, rank, len(events), topic, payload))

    for sweep in scene.sweeps:
        sensor = sensors[sweep.channel]
        info, image = topics.camera_info_topic(sweep.channel), topics.image_topic(sweep.channel)
        add(sweep.stamp_ns, _RANK_INFO, info, partial(_info_payload, sweep, sensor))
        add(sweep.stamp_ns, _RANK_IMAGE, image, partial(_image_payload, sweep, sensor.frame_id))
    for (stamp_ns, pose), twist in zip(scene.ego, ego_twists(scene.ego), strict=True):
        add(stamp_ns, _RANK_TF, topics.tf, partial(_tf_payload, stamp_ns, pose))
        add(stamp_ns, _RANK_ODOM, topics.odom, partial(_odom_payload, stamp_ns, pose, twist))
    for stamp_ns, data in _tracks_payloads(scene.keyframes):
        add(stamp_ns, _RANK_TRACKS, topics.tracks, partial(bytes, data))
    start = min(e.stamp_ns for e in events)
    add(start, _RANK_TF_STATIC, topics.tf_static, partial(_static_payload, start, scene.sensors))
    for stamp_ns in _clock_stamps([e.stamp_ns for e in events], clock_hz):
        add(stamp_ns, _RANK_CLOCK, topics.clock, partial(_clock_payload, stamp_ns))
    events.sort()
    return events


def _connections(scene: _Scene, topics: TopicNames) -> dict[str, tuple[str, Qos]]:
    """Topic -> (message type, offered QoS)."""
    conns: dict[str, tuple[str, Qos]] = {
        topics.tf_static: (rosmsgs.TF_MESSAGE, rosmsgs.offered_qos(1, latched=True)),
        topics.tf: (rosmsgs.TF_MESSAGE, rosmsgs.offered_qos(100)),
        topics.odom: (rosmsgs.ODOMETRY, rosmsgs.offered_qos(10)),
        topics.clock: (rosmsgs.CLOCK, rosmsgs.offered_qos(10)),
        topics.tracks: (rosmsgs.TRACKED_OBJECT_ARRAY, rosmsgs.offered_qos(10)),
    }
    for sensor in scene.sensors:
        if sensor.K is not None:
            conns[topics.image_topic(sensor.channel)] = (rosmsgs.COMPRESSED_IMAGE, rosmsgs.offered_qos(10))
            conns[topics.camera_info_topic(sensor.channel)] = (rosmsgs.CAMERA_INFO, rosmsgs.offered_qos(10))
    expected = 5 + 2 * sum(s.K is not None for s in scene.sensors)
    if len(conns) != expected:
        raise ValueError(f"topic names must be distinct, got {sorted(conns)}")
    return conns


# ------------------------------------------------------------------- writing


def _bag_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _check_out(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if out.is_dir() and not (out / "metadata.yaml").is_file():
        # Refuse to delete a directory that is not a bag, even with overwrite.
        raise FileExistsError(f"{out} exists and is not a rosbag2 bag (no metadata.yaml); not replacing it")


def _write(
    events: Sequence[_Event],
    conns: dict[str, tuple[str, Qos]],
    path: Path,
    storage: Storage,
    progress: bool,
) -> dict[str, int]:
    store = rosmsgs.typestore()
    counts = dict.fromkeys(conns, 0)
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=_PLUGINS[storage])
    with writer:
        handles = {
            topic: writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=[qos])
            for topic, (msgtype, qos) in conns.items()
        }
        for event in tqdm(events, desc=path.name, unit="msg", disable=not progress, leave=False):
            writer.write(handles[event.topic], event.stamp_ns, event.payload())
            counts[event.topic] += 1
    return counts


def convert_loaded_scene(
    nusc: Any,
    scene_name: str,
    out: str | Path,
    storage: Storage = "mcap",
    topics: TopicNames | None = None,
    overwrite: bool = False,
    progress: bool = True,
    clock_hz: float = DEFAULT_CLOCK_HZ,
) -> ConvertStats:
    """:func:`convert_scene` with an already loaded ``nuscenes.NuScenes`` (to convert many scenes)."""
    started = time.perf_counter()
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    out = Path(out)
    _check_out(out, overwrite)
    topics = topics or TopicNames()
    scene = _load_scene(nusc, scene_name)
    _check_images(scene.sweeps)
    events = _plan(scene, topics, clock_hz)
    conns = _connections(scene, topics)

    # rosbags names the storage file after the bag directory, so the bag is
    # built as BAG.partial/<name> and moved out whole when it is complete.
    staging = out.with_name(out.name + ".partial")
    remove_stale_partials(out.parent)  # old bags a kill left half-deleted (see replace_dir)
    if staging.exists() or staging.is_symlink():
        print(f"syncl convert: removing {staging}, an incomplete bag of an interrupted run", file=sys.stderr)
        _remove(staging)
    staging.mkdir(parents=True)
    try:
        counts = _write(events, conns, staging / out.name, storage, progress)
        _check_out(out, overwrite)  # the output may have appeared meanwhile
        # The old bag is renamed aside before the new one moves in: a kill never leaves a
        # half-deleted bag at OUT (which a rerun would refuse: no metadata.yaml).
        replace_dir(staging / out.name, out)
    finally:
        _remove(staging)
    return ConvertStats(
        scene=scene_name,
        out=out,
        storage=storage,
        messages=counts,
        bytes=_bag_size(out),
        seconds=time.perf_counter() - started,
        duration_s=(events[-1].stamp_ns - events[0].stamp_ns) * 1e-9,
        skipped_annotations=scene.skipped_annotations,
    )


def convert_scene(
    dataroot: str | Path,
    version: str,
    scene_name: str,
    out: str | Path,
    storage: Storage = "mcap",
    topics: TopicNames | None = None,
    overwrite: bool = False,
    progress: bool = True,
    clock_hz: float = DEFAULT_CLOCK_HZ,
) -> ConvertStats:
    """Write scene ``scene_name`` of the nuScenes dataset at ``dataroot`` to the bag ``out``.

    Raises FileExistsError if ``out`` exists and ``overwrite`` is false,
    FileNotFoundError if ``dataroot`` holds no ``version`` tables, and
    ConvertError if the scene is unknown or its data is incomplete. A failed
    conversion leaves nothing new behind: no partial bag, and an existing
    ``out`` untouched.
    """
    from nuscenes.nuscenes import NuScenes

    _check_out(Path(out), overwrite)  # fail before the slow table load
    require_tables(dataroot, version)
    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    return convert_loaded_scene(nusc, scene_name, out, storage, topics, overwrite, progress, clock_hz)
