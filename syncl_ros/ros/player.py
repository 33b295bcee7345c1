"""Replay a rosbag2 bag (MCAP or sqlite3) through rclpy, for machines without rosbag2.

Messages are read with rosbags and published as the recorded CDR bytes (no
deserialization), so any type importable here replays at full speed. The
player keeps the recorded timing scaled by ``rate``, publishes /clock from the
bag time, can loop and skip the start of the bag. Timing uses
``time.monotonic`` and sleeps on an Event (never spins), so a stop request
(Ctrl-C) ends playback within one sleep.

QoS. A reliable publisher serves both reliable and best-effort subscribers
(the reverse does not match), so every topic is offered reliable:

* latched topics (/tf_static, or any topic recorded transient-local):
  transient-local, reliable, depth = number of such messages in the bag
  (usually 1). Depth 1 would hide all but the last /tf_static message from a
  late subscriber when a bag holds several (one per static broadcaster).
  They are published at the start of every pass, so a node that reset on the
  loop's backward time jump gets its static transforms again.
* everything else: volatile, reliable, keep-last 10 - enough to absorb a
  short stall of a subscriber without holding many camera images; /tf, with
  several small messages per frame, keep-last 100 (as deep as tf2's own).
* /clock: reliable keep-last 1 (the rclpy time source subscribes best-effort).
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import rclpy
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock

from syncl_ros.ros.faults import FaultInjector, FaultSettings

NS_PER_S = 1_000_000_000
STATIC_TOPICS = ("/tf_static",)
DEFAULT_DEPTH = 10
# /tf carries several small messages per frame: a reliable writer drops its oldest unacknowledged
# sample when its history is full, so a briefly busy subscriber would lose poses at depth 10.
TF_DEPTH = 100
MAX_LATCHED = 1000  # a "latched" topic with more messages than this is not a latched topic


DISCOVERY_SETTLE_S = 1.0


@dataclass
class PlayOptions:
    bag: Path
    rate: float = 1.0
    loop: bool = False
    start_offset_s: float = 0.0
    topics: list[str] | None = None  # None: all topics
    clock_hz: float = 100.0
    publish_clock: bool = True
    wait_for_subscribers_s: float = 0.0
    min_subscribers: int = 1  # subscribers each topic needs before playing (e.g. 2: a node and a recorder)
    ros_args: list[str] = field(default_factory=list)
    node_name: str = "syncl_player"
    faults: FaultSettings | None = None  # inject seeded random faults (soak tests)
    fault_log: Path | None = None  # one JSON line per injected fault

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"--rate must be > 0, got {self.rate}")
        if self.start_offset_s < 0:
            raise ValueError(f"--start-offset must be >= 0, got {self.start_offset_s}")
        if self.min_subscribers < 1:
            raise ValueError(f"--min-subscribers must be >= 1, got {self.min_subscribers}")
        if self.publish_clock and not self.clock_hz > 0:
            raise ValueError(f"--clock-hz must be > 0, got {self.clock_hz}")


@dataclass
class PlayStats:
    published: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> why it is not played
    passes: int = 0
    wall_s: float = 0.0
    bag_s: float = 0.0  # bag time covered, all passes together
    clock_ticks: int = 0
    lag_sum_s: float = 0.0
    lag_max_s: float = 0.0
    stopped: bool = False  # ended by a stop request (Ctrl-C)
    faults: str = ""  # what the fault injector did, when it ran

    def count(self, topic: str, lag_s: float) -> None:
        self.published[topic] = self.published.get(topic, 0) + 1
        self.lag_sum_s += lag_s
        self.lag_max_s = max(self.lag_max_s, lag_s)

    def summary(self, requested_rate: float) -> str:
        total = sum(self.published.values())
        achieved = self.bag_s / self.wall_s if self.wall_s > 0 else 0.0
        lag_mean_ms = 1e3 * self.lag_sum_s / total if total else 0.0
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.published.items())) or "none"
        line = (
            f"played {total} messages in {self.wall_s:.2f} s (bag {self.bag_s:.2f} s, "
            f"rate {achieved:.2f}x of {requested_rate:.2f}x), {self.passes} pass(es), "
            f"lag mean {lag_mean_ms:.1f} ms max {1e3 * self.lag_max_s:.1f} ms, "
            f"/clock {self.clock_ticks} ticks; per topic: {topics}"
        )
        if self.skipped:
            line += "; skipped: " + ", ".join(f"{t} ({why})" for t, why in sorted(self.skipped.items()))
        if self.faults:
            line += f"; faults injected: {self.faults}"
        return line + (" [stopped]" if self.stopped else "")


def resolve_message_class(msgtype: str) -> Any:
    """``pkg/msg/Name`` (or ``pkg/Name``) -> the generated Python class ``pkg.msg.Name``."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ImportError(f"malformed message type name {msgtype!r}")
    package, kind, name = parts
    module = importlib.import_module(f"{package}.{kind}")
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"{package}.{kind} has no message {name}") from None


_Latched = tuple[str, int, bytes]  # topic, bag time, CDR bytes


@dataclass
class _Topic:
    name: str
    msgtype: str
    connections: list[Any]
    latched: bool
    msg_class: Any = None
    publisher: Any = None
    deserialize: bool = False  # rclpy without publish(bytes): deserialize first (slower)


def _recorded_latched(connections: Iterable[Any]) -> bool:
    """Whether the recorder saw a transient-local publisher (rosbag2 stores the offered QoS)."""
    for conn in connections:
        for qos in getattr(conn.ext, "offered_qos_profiles", None) or []:
            if getattr(getattr(qos, "durability", None), "name", "") == "TRANSIENT_LOCAL":
                return True
    return False


def _normalize_topic(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


class BagPlayer:
    """Plays one bag on an rclpy node; :meth:`run` blocks until the end or ``stop`` is set."""

    def __init__(
        self,
        options: PlayOptions,
        node: Any,
        stop: threading.Event,
        log: Callable[[str], None],
        fault_log: TextIO | None = None,
    ) -> None:
        self.options = options
        self.node = node
        self.stop = stop
        self.log = log
        self.fault_log = fault_log
        self.stats = PlayStats()
        self.faults: FaultInjector | None = None
        self._rate = options.rate  # options.rate, doubled during an injected burst
        self._topics: dict[str, _Topic] = {}
        self._clock_pub: Any = None
        self._next_tick = 0.0
        self._wall0 = 0.0
        self._bag0 = 0

    # ------------------------------------------------------------------ setup

    def _plan(self, reader: Any) -> None:
        """Group connections per topic, apply the topic filter, resolve the message classes."""
        by_topic: dict[str, list[Any]] = {}
        for conn in reader.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        wanted = {_normalize_topic(t) for t in self.options.topics} if self.options.topics else None
        if wanted is not None:
            for missing in sorted(wanted - set(by_topic)):
                self.log(f"warning: topic {missing} is not in the bag")
        for name, conns in sorted(by_topic.items()):
            if wanted is not None and name not in wanted:
                continue
            if name == "/clock" and self.options.publish_clock:
                self.stats.skipped[name] = "replaced by the player's own /clock; use --no-clock to replay it"
                continue
            self._add_topic(name, conns)

    def _add_topic(self, name: str, conns: list[Any]) -> None:
        types = {c.msgtype for c in conns}
        if len(types) > 1:
            self.stats.skipped[name] = f"recorded with several types {sorted(types)}"
            self.log(f"skipping {name}: recorded with several message types {sorted(types)}")
            return
        msgtype = types.pop()
        try:
            msg_class = resolve_message_class(msgtype)
        except ImportError as err:
            self.stats.skipped[name] = f"type {msgtype} not importable"
            self.log(
                f"skipping {name}: message type {msgtype} is not importable here ({err}); "
                "install or source the package that defines it"
            )
            return
        latched = name in STATIC_TOPICS or _recorded_latched(conns)
        self._topics[name] = _Topic(name, msgtype, conns, latched, msg_class)

    def _create_publishers(self, latched_counts: dict[str, int]) -> None:
        for topic in self._topics.values():
            if topic.latched:
                depth = max(1, min(latched_counts.get(topic.name, 1), MAX_LATCHED))
                durability = DurabilityPolicy.TRANSIENT_LOCAL
            else:
                depth = TF_DEPTH if topic.name == "/tf" else DEFAULT_DEPTH
                durability = DurabilityPolicy.VOLATILE
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=depth,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=durability,
            )
            topic.publisher = self.node.create_publisher(topic.msg_class, topic.name, qos)
        if self.options.publish_clock:
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self._clock_pub = self.node.create_publisher(Clock, "/clock", qos)

    def _read_latched(self, reader: Any) -> list[_Latched]:
        conns = [c for t in self._topics.values() if t.latched for c in t.connections]
        if not conns:
            return []
        out: list[_Latched] = []
        for conn, stamp, raw in reader.messages(connections=conns):
            if len(out) >= MAX_LATCHED:
                self.log(f"warning: more than {MAX_LATCHED} latched messages; only the first are re-sent")
                break
            out.append((conn.topic, stamp, bytes(raw)))
        return out

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.options.wait_for_subscribers_s
        pubs = [t.publisher for t in self._topics.values()]
        clock = [self._clock_pub] if self._clock_pub is not None else []
        need = self.options.min_subscribers
        while time.monotonic() < deadline and not self.stop.is_set():
            topics_ready = all(p.get_subscription_count() >= need for p in pubs)
            if topics_ready and all(p.get_subscription_count() > 0 for p in clock):
                # Discovery is asymmetric: a publisher can see a subscriber before that subscriber
                # has matched the publisher, and what is sent in between is lost. Let both sides settle.
                self.stop.wait(DISCOVERY_SETTLE_S)
                return
            self.stop.wait(0.05)

    def _make_injector(self) -> None:
        """Faults go into compressed images (each topic's first name part is its camera) and /tf."""
        settings = self.options.faults
        if settings is None:
            return
        images = {
            t.name: t.name.strip("/").split("/")[0]
            for t in self._topics.values()
            if t.msgtype.endswith("/CompressedImage")
        }
        log = self.fault_log if self.fault_log is not None else io.StringIO()
        self.faults = FaultInjector(settings, images, log, loop=self.options.loop)

    # ---------------------------------------------------------------- playing

    def run(self, reader: Any) -> PlayStats:
        """Play an opened rosbags AnyReader."""
        self._plan(reader)
        latched = self._read_latched(reader)
        counts: dict[str, int] = {}
        for topic, _, _ in latched:
            counts[topic] = counts.get(topic, 0) + 1
        self._create_publishers(counts)
        self._make_injector()
        if self.options.wait_for_subscribers_s > 0:
            self._wait_for_subscribers()
        start = reader.start_time + round(self.options.start_offset_s * NS_PER_S)
        if start >= reader.end_time and reader.message_count:
            raise ValueError(
                f"--start-offset {self.options.start_offset_s} s is beyond the bag's "
                f"{(reader.end_time - reader.start_time) / NS_PER_S:.2f} s"
            )
        stream = [c for t in self._topics.values() for c in t.connections]
        began = time.monotonic()
        if self.faults is not None:
            self.faults.start()
        while not self.stop.is_set():
            jumped = self._play_pass(reader, stream, latched, start)
            if not self.options.loop or not stream:
                break
            if self.faults is not None and not jumped and not self.stop.is_set():
                self.faults.looped()
        self.stats.wall_s = time.monotonic() - began
        self.stats.stopped = self.stop.is_set()
        if self.faults is not None:
            self.stats.faults = self.faults.summary()
        return self.stats

    def _play_pass(self, reader: Any, stream: list[Any], latched: list[_Latched], start: int) -> bool:
        """One pass from ``start``; True when an injected time jump cut it short."""
        self._wall0, self._bag0 = time.monotonic(), start
        self._next_tick = self._wall0
        self.stats.passes += 1
        self._tick(at_ns=start)
        for name, stamp, raw in latched:
            if stamp <= start:  # later ones are played at their time
                self._publish(self._topics[name], raw, lag_s=0.0)
        last, jumped = start, False
        for conn, stamp, raw in reader.messages(connections=stream, start=start) if stream else ():
            topic = self._topics[conn.topic]
            if topic.latched and stamp <= start:
                continue
            if self.faults is not None:
                self._follow_rate(self.faults.rate_factor())
                if self.faults.jump_due((stamp - start) / NS_PER_S):
                    jumped = True
                    break
            if not self._sleep_until(self._wall_of(stamp)):
                break
            lag = max(0.0, time.monotonic() - self._wall_of(stamp))
            data = bytes(raw)
            if self.faults is not None:
                data = self.faults.apply(topic.name, topic.msg_class, data)
            if data is not None:  # None: held back (a silent camera)
                self._publish(topic, data, lag)
            last = stamp
        self.stats.bag_s += (last - start) / NS_PER_S
        return jumped

    def _follow_rate(self, factor: float) -> None:
        """Scale the rate by ``factor`` (a burst) from now on, bag time continuing where it is."""
        rate = self.options.rate * factor
        if rate != self._rate:
            bag_now = self._bag_now()
            self._wall0, self._bag0, self._rate = time.monotonic(), bag_now, rate

    def _wall_of(self, stamp: int) -> float:
        return self._wall0 + (stamp - self._bag0) / NS_PER_S / self._rate

    def _bag_now(self) -> int:
        return self._bag0 + round((time.monotonic() - self._wall0) * self._rate * NS_PER_S)

    def _sleep_until(self, wall: float) -> bool:
        """Sleep until ``wall`` (monotonic s), publishing /clock ticks meanwhile; False when stopped."""
        while True:
            if self.stop.is_set():
                return False
            now = time.monotonic()
            self._tick()
            if now >= wall:
                return True
            wake = min(wall, self._next_tick) if self._clock_pub is not None else wall
            self.stop.wait(max(0.0, wake - now))

    def _tick(self, at_ns: int | None = None) -> None:
        """Publish /clock when a tick is due, or now at ``at_ns`` (start of a pass)."""
        if self._clock_pub is None:
            return
        now = time.monotonic()
        if at_ns is None and now < self._next_tick:
            return
        sec, nanosec = divmod(self._bag_now() if at_ns is None else at_ns, NS_PER_S)
        self._clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nanosec)))
        self.stats.clock_ticks += 1
        period = 1.0 / self.options.clock_hz
        # After a stall, resume the cadence from now instead of bursting missed ticks.
        self._next_tick = max(self._next_tick + period, now + period / 2)

    def _publish(self, topic: _Topic, raw: Any, lag_s: float) -> None:
        """Publish recorded CDR bytes (or a message object the fault injector built)."""
        if not isinstance(raw, bytes):
            topic.publisher.publish(raw)
            self.stats.count(topic.name, lag_s)
            return
        if not topic.deserialize:
            try:
                topic.publisher.publish(raw)
            except TypeError:
                # rclpy releases that cannot publish serialized bytes: deserialize from now on.
                topic.deserialize = True
        if topic.deserialize:
            topic.publisher.publish(deserialize_message(raw, topic.msg_class))
        self.stats.count(topic.name, lag_s)

    def flush(self, timeout_s: float = 1.0) -> None:
        """Give reliable subscribers time to acknowledge the last samples before the publishers go away.

        Bounded: Fast DDS confirms on its periodic heartbeat (seconds), and
        the samples were sent already; this only covers a subscriber that
        is momentarily behind.
        """
        deadline = time.monotonic() + timeout_s
        for topic in self._topics.values():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if hasattr(topic.publisher, "wait_for_all_acked"):
                topic.publisher.wait_for_all_acked(Duration(nanoseconds=int(left * NS_PER_S)))


def open_reader(bag: Path) -> Any:
    """An opened rosbags AnyReader on a rosbag2 bag; ValueError with the reason otherwise."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    if not bag.exists():
        raise ValueError(f"bag {bag} does not exist")
    try:
        # The default typestore only matters for bags without embedded definitions.
        reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY))
    except AnyReaderError as err:
        raise ValueError(f"cannot open {bag}: {err}") from None
    if not reader.is2:
        raise ValueError(f"{bag} is a ROS 1 bag; only rosbag2 (MCAP, sqlite3) bags replay through rclpy")
    try:
        reader.open()
    except AnyReaderError as err:
        raise ValueError(f"cannot read {bag}: {err}") from None
    return reader


def _init_rclpy(ros_args: list[str], context: Any) -> None:
    args = ["syncl_play", "--ros-args", *ros_args] if ros_args else None
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # older rclpy: no choice, its handler stays
        rclpy.init(args=args, context=context)
        return
    # The caller owns SIGINT (it sets ``stop``); rclpy's handler would tear the context down mid-publish.
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


def play(options: PlayOptions, stop: threading.Event | None = None, out: TextIO | None = None) -> PlayStats:
    """Open the bag, start rclpy in a private context, play, shut down; returns the statistics."""
    out = out if out is not None else sys.stderr
    stop = stop if stop is not None else threading.Event()

    def log(text: str) -> None:
        print(f"syncl play: {text}", file=out, flush=True)

    reader = open_reader(options.bag)
    context = rclpy.context.Context()
    _init_rclpy(options.ros_args, context)
    try:
        node = rclpy.create_node(options.node_name, context=context)
        fault_log = None
        if options.faults is not None:
            fault_log = open(options.fault_log or os.devnull, "a", encoding="utf-8")  # noqa: SIM115
        player = BagPlayer(options, node, stop, log, fault_log)
        try:
            stats = player.run(reader)
            if not stats.stopped:  # after Ctrl-C, leave at once
                player.flush()
        finally:
            node.destroy_node()
            if fault_log is not None:
                fault_log.close()
    finally:
        reader.close()
        if context.ok():
            rclpy.shutdown(context=context)
    return stats
