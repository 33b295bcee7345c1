"""Record topics over DDS into a rosbag2 bag with MCAP storage that Foxglove and Lichtblick open,
for machines without `ros2 bag record` (on a ROS install, that is the way).

Messages are kept as the CDR bytes that arrive (raw subscriptions: nothing is deserialized).
Each topic's schema is its full ros2msg definition (the rosbags typestore: ROS 2 Jazzy, the
package's own messages, and any other package's ``share/<pkg>/msg/*.msg``), which is what
those viewers need to show markers in 3D and images. Topics are discovered while recording,
so outputs that appear late (a node that configures after the recorder starts) are caught.

QoS follows the publishers, as rosbag2 does: reliable where every publisher is (no drops from
a reliable player or node), transient-local where every publisher is (latched /tf_static).
Topics of known type (the defaults: KNOWN_TYPES) are subscribed at once, reliable, so that the
first messages of a publisher that starts later are not lost to discovery; a topic whose
publishers all turn out best effort (a camera driver) is subscribed again best effort.
Log time is the recorder's clock at arrival; with ``use_sim_time`` that is the player's
/clock (the data's own time line), and messages that arrive before the first /clock tick are
logged at that first tick.

The bag is written as OUT.partial/OUT and moved to OUT when closed, so a reader never sees
half a recording. `record_node_replay` records a bag's replay through the tracker node (the demo).
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg
from rosbags.typesys.store import Typestore

from syncl_ros.data import rosmsgs
from syncl_ros.ros.player import resolve_message_class
from syncl_ros.ros.processes import NODE_TOPICS, start_node, start_player, stop, wait_for_subscriptions

NODE_OUTPUTS = [f"/syncl_tracker/{t}" for t in ("tracks", "detections", "markers", "overlay")]
DEFAULT_TOPICS = [*NODE_TOPICS, *NODE_OUTPUTS, "/diagnostics"]
KNOWN_TYPES = {
    **{t: "sensor_msgs/msg/CompressedImage" for t in NODE_TOPICS if t.endswith("image_rect_compressed")},
    **{t: "sensor_msgs/msg/CameraInfo" for t in NODE_TOPICS if t.endswith("camera_info")},
    "/tf": "tf2_msgs/msg/TFMessage",
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/syncl_tracker/tracks": "syncl_ros/msg/TrackedObject3DArray",
    "/syncl_tracker/detections": "vision_msgs/msg/Detection3DArray",
    "/syncl_tracker/markers": "visualization_msgs/msg/MarkerArray",
    "/syncl_tracker/overlay": "sensor_msgs/msg/CompressedImage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}
DEPTH = 100  # keep-last depth of each subscription: absorbs a burst while the bag is written


def _share_msg_dir(package: str) -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory

        folder = Path(get_package_share_directory(package)) / "msg"
    except (ImportError, KeyError, LookupError, ValueError, OSError):
        folder = Path(sys.prefix) / "share" / package / "msg"
    return folder if folder.is_dir() else None


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Make ``msgtype`` known to ``store``, from its package's installed .msg files if needed.

    Raises LookupError naming the type when no definition can be found.
    """
    if msgtype in store.types:
        return
    package = msgtype.split("/")[0]
    folder = _share_msg_dir(package)
    if folder is None:
        raise LookupError(f"no message definition of {msgtype} (no share/{package}/msg here)")
    types: dict[str, Any] = {}
    for path in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{package}/msg/{path.stem}"))
    store.register(types)
    if msgtype not in store.types:
        raise LookupError(f"no message definition of {msgtype} in {folder}")


def _qos(reliable: bool, latched: bool) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def _reliable(publisher: Any) -> bool:
    return bool(publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE)


def _latched(publisher: Any) -> bool:
    return bool(publisher.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)


class McapRecorder:
    """Subscribes to ``topics`` (None: every topic seen) on ``node`` and writes them to ``out``."""

    def __init__(
        self,
        node: Node,
        out: Path,
        topics: Sequence[str] | None = DEFAULT_TOPICS,
        log: Callable[[str], None] = print,
        discover_period_s: float = 0.2,
        overwrite: bool = False,
    ) -> None:
        self.node, self.out, self.log = node, Path(out), log
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"{self.out} exists (overwrite it with --overwrite)")
        self.wanted = None if topics is None else set(topics)
        self.counts: Counter[str] = Counter()
        self.skipped: dict[str, str] = {}
        self._store = rosmsgs.typestore()
        self._subs: dict[str, Any] = {}
        self._conns: dict[str, Any] = {}
        self._best_effort: set[str] = set()
        self._pending: list[tuple[Any, bytes]] = []  # arrived before the first sim-time tick
        self._staging = self.out.with_name(self.out.name + ".partial")
        shutil.rmtree(self._staging, ignore_errors=True)  # left over from an interrupted run
        self._staging.mkdir(parents=True)
        self._writer = Writer(
            self._staging / self.out.name, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP
        )
        self._writer.open()
        for name in sorted(set(KNOWN_TYPES) & (self.wanted or set(KNOWN_TYPES))):
            self._subscribe(name, KNOWN_TYPES[name], reliable=True, latched=name == "/tf_static")
        self.discover()
        self._timer = node.create_timer(discover_period_s, self.discover)

    def discover(self) -> None:
        """Subscribe to wanted topics that have appeared since the last call."""
        for name, types in self.node.get_topic_names_and_types():
            if name in self.skipped or (self.wanted is not None and name not in self.wanted):
                continue
            publishers = self.node.get_publishers_info_by_topic(name)
            if not publishers:
                continue
            if name not in self._subs:
                reliable, latched = all(map(_reliable, publishers)), all(map(_latched, publishers))
                self._subscribe(name, types[0], reliable, latched)
            elif name not in self._best_effort and not any(map(_reliable, publishers)):
                # subscribed reliable in advance, but only best-effort publishers came: they never match
                self.node.destroy_subscription(self._subs.pop(name))
                self._subscribe(name, types[0], reliable=False, latched=False)

    def _subscribe(self, name: str, msgtype: str, reliable: bool, latched: bool) -> None:
        try:
            ensure_type(self._store, msgtype)
            msg_class = resolve_message_class(msgtype)
        except (LookupError, ImportError) as err:
            self.skipped[name] = str(err)
            self.log(f"not recording {name}: {err}")
            return
        if not reliable:
            self._best_effort.add(name)
        if name not in self._conns:
            offered = rosmsgs.offered_qos(1 if latched else 10, latched)
            self._conns[name] = self._writer.add_connection(
                name, msgtype, typestore=self._store, offered_qos_profiles=[offered]
            )
        callback = partial(self._on_message, self._conns[name])
        self._subs[name] = self.node.create_subscription(
            msg_class, name, callback, _qos(reliable, latched), raw=True
        )

    def _on_message(self, conn: Any, data: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        if now == 0:  # sim time before the first /clock
            self._pending.append((conn, data))
            return
        for held, raw in self._pending:
            self._write(held, now, raw)
        self._pending.clear()
        self._write(conn, now, data)

    def _write(self, conn: Any, stamp_ns: int, data: bytes) -> None:
        self._writer.write(conn, stamp_ns, data)
        self.counts[conn.topic] += 1

    def close(self) -> Path:
        """Stop recording, finish the bag and move it into place; returns its folder."""
        self.node.destroy_timer(self._timer)
        for sub in self._subs.values():
            self.node.destroy_subscription(sub)
        for held, raw in self._pending:  # a clock never came: log them at their arrival order, time 0
            self._write(held, 0, raw)
        self._writer.close()
        shutil.rmtree(self.out, ignore_errors=True)
        (self._staging / self.out.name).rename(self.out)
        shutil.rmtree(self._staging, ignore_errors=True)
        return self.out

    @property
    def mcap_path(self) -> Path:
        """The MCAP file inside the closed bag (what Foxglove opens)."""
        return self.out / f"{self.out.name}.mcap"

    def summary(self) -> str:
        total = sum(self.counts.values())
        lines = [f"{total} messages on {len(self.counts)} topics in {self.mcap_path}"]
        lines += [f"  {topic}: {n}" for topic, n in sorted(self.counts.items())]
        missing = sorted((self.wanted or set()) - set(self.counts) - set(self.skipped))
        if missing:
            lines.append("  never published: " + ", ".join(missing))
        return "\n".join(lines)


def record_node_replay(
    bag: Path,
    params: Mapping[str, Any],
    out: Path,
    env: Mapping[str, str],
    extra: Sequence[str] = (),
    log: Callable[[str], None] = print,
    timeout_s: float = 600.0,
    rate: float = 1.0,
) -> Path:
    """Replay ``bag`` through the tracker node, node and player each a process of its own (as a
    user runs them), and record the node's inputs and outputs here into ``out``; the MCAP's path.

    ``params`` and ``extra`` (raw ``name:=value`` strings) are the node's parameters; ``rate``
    the replay speed."""
    import time

    import rclpy
    from rclpy.parameter import Parameter

    node = start_node(params, env, extra)
    rclpy.init()
    listener = rclpy.create_node(
        "syncl_demo_recorder", parameter_overrides=[Parameter("use_sim_time", value=True)]
    )
    recorder = McapRecorder(listener, out, log=log, overwrite=True)
    try:
        if not wait_for_subscriptions(listener, NODE_TOPICS, timeout_s=timeout_s):
            raise RuntimeError("the tracker node did not subscribe to its inputs")
        log("replaying the bag through the node (DDS, separate processes), recording everything")
        # The node and the recorder both subscribe: neither may miss the first messages.
        options = ["--wait-for-subscribers", "60", "--min-subscribers", "2", "--rate", str(rate)]
        options += ["--topics", *NODE_TOPICS]
        player = start_player(bag, options, env)
        deadline = time.monotonic() + timeout_s
        while player.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(listener, timeout_sec=0.05)
        _settle(listener, recorder, time.monotonic() + timeout_s)
    finally:
        stop(node)
        recorder.close()
        listener.destroy_node()
        rclpy.shutdown()
    log(recorder.summary())
    return recorder.mcap_path


def _settle(listener: Any, recorder: McapRecorder, deadline: float, quiet_s: float = 3.0) -> None:
    """Spin until the node has published nothing for ``quiet_s``: after the bag ends it may still
    be working through the frames waiting in its queue."""
    import time

    import rclpy

    def outputs() -> int:
        return sum(recorder.counts[topic] for topic in NODE_OUTPUTS)

    seen, quiet_since = outputs(), time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
        rclpy.spin_once(listener, timeout_sec=0.05)
        if outputs() != seen:
            seen, quiet_since = outputs(), time.monotonic()
