"""`syncl play`: a bag written with rosbags replays over Fast DDS to a subscriber in this process."""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from syncl_ros.msg import TrackedObject3DArray
from tf2_msgs.msg import TFMessage

from syncl_ros.ros.messages import stamp_to_ns
from syncl_ros.ros.play_cli import configure_parser
from syncl_ros.ros.player import PlayOptions, PlayStats, resolve_message_class

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

MSG_DIR = Path(__file__).resolve().parents[1] / "msg"
S = 1_000_000_000
T0 = 1_700_000_000 * S
CHATTER = [T0 + k * S // 10 for k in range(20)]  # 10 Hz over 1.9 s
TRACKS = [T0 + k * S // 5 + S // 20 for k in range(10)]  # 5 Hz
# One domain per test run, so concurrent DDS tests on this machine never cross-talk.
DOMAIN = 1 + os.getpid() % 200


# ---------------------------------------------------------------- the bag


def typestore() -> Any:
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for name in ("TrackedObject3D", "TrackedObject3DArray"):
        types.update(get_types_from_msg((MSG_DIR / f"{name}.msg").read_text(), f"syncl_ros/msg/{name}"))
    types.update(get_types_from_msg("int32 value\n", "fake_pkg/msg/Nope"))  # importable nowhere
    store.register(types)
    return store


def _latched_qos() -> Qos:
    unset = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        1,
        QosReliability.RELIABLE,
        QosDurability.TRANSIENT_LOCAL,
        unset,
        unset,
        QosLiveliness.AUTOMATIC,
        unset,
        False,
    )


def _tracks_msg(store: Any, k: int, stamp: int) -> Any:
    T = store.types
    sec, nanosec = divmod(stamp, S)
    obj = T["syncl_ros/msg/TrackedObject3D"](
        track_id=k,
        uuid=T["unique_identifier_msgs/msg/UUID"](uuid=np.arange(16, dtype=np.uint8)),
        label=0,
        class_name="car",
        score=0.9,
        age=k,
        hits=k + 1,
        frames_since_update=0,
        pose=T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=float(k), y=0.0, z=0.0),
            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        size=T["geometry_msgs/msg/Vector3"](x=4.5, y=1.9, z=1.6),
        velocity=T["geometry_msgs/msg/Vector3"](x=1.0, y=0.0, z=0.0),
        has_covariance=False,
        pose_covariance=np.zeros(36),
        velocity_covariance=np.zeros(9),
    )
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="base_link"
    )
    return T["syncl_ros/msg/TrackedObject3DArray"](header=header, objects=[obj], cameras=["CAM_FRONT"])


def _tf_static_msg(store: Any) -> Any:
    T = store.types
    ts = T["geometry_msgs/msg/TransformStamped"](
        header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=T0 // S, nanosec=0), frame_id="base_link"
        ),
        child_frame_id="cam_front_optical",
        transform=T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=1.7, y=0.0, z=1.5),
            rotation=T["geometry_msgs/msg/Quaternion"](x=-0.5, y=0.5, z=-0.5, w=0.5),
        ),
    )
    return T["tf2_msgs/msg/TFMessage"](transforms=[ts])


def write_bag(path: Path, storage: StoragePlugin) -> Path:
    store = typestore()
    T = store.types
    with Writer(path, version=9, storage_plugin=storage) as writer:
        static = writer.add_connection(
            "/tf_static", "tf2_msgs/msg/TFMessage", typestore=store, offered_qos_profiles=[_latched_qos()]
        )
        chatter = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        tracks = writer.add_connection("/tracks", "syncl_ros/msg/TrackedObject3DArray", typestore=store)
        nope = writer.add_connection("/nope", "fake_pkg/msg/Nope", typestore=store)
        records = [(T0, static, _tf_static_msg(store)), (T0 + S // 2, nope, T["fake_pkg/msg/Nope"](value=1))]
        records += [(t, chatter, T["std_msgs/msg/String"](data=f"msg {k}")) for k, t in enumerate(CHATTER)]
        records += [(t, tracks, _tracks_msg(store, k, t)) for k, t in enumerate(TRACKS)]
        for stamp, conn, msg in sorted(records, key=lambda r: r[0]):
            writer.write(conn, stamp, store.serialize_cdr(msg, conn.msgtype))
    return path


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bag(tmp_path_factory.mktemp("bags") / "demo_mcap", StoragePlugin.MCAP)


# ------------------------------------------------------------ the listener


class Listener:
    """Subscribes to the played topics; records (receipt time, message) per topic."""

    def __init__(self) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN)
        self.node = rclpy.create_node("syncl_play_listener", context=self.context)
        self.got: dict[str, list[tuple[float, Any]]] = {}
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        for topic, cls, qos in (
            ("/chatter", String, reliable),
            ("/tracks", TrackedObject3DArray, reliable),
            ("/clock", Clock, reliable),
            ("/tf_static", TFMessage, latched),
        ):
            self.got[topic] = []
            self.node.create_subscription(cls, topic, self._recorder(topic), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def _recorder(self, topic: str) -> Callable[[Any], None]:
        return lambda msg: self.got[topic].append((time.monotonic(), msg))

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def messages(self, topic: str) -> list[Any]:
        return [m for _, m in self.got[topic]]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def listener() -> Iterator[Listener]:
    sub = Listener()
    yield sub
    sub.close()


def start_player(bag: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN))
    cmd = [sys.executable, "-m", "syncl_ros.ros.play_cli", str(bag), "--wait-for-subscribers", "10", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(player: subprocess.Popen[str], listener: Listener, timeout_s: float = 20.0) -> tuple[str, str]:
    listener.spin_until(lambda: player.poll() is not None, timeout_s)
    if player.poll() is None:
        player.kill()
    out, err = player.communicate(timeout=5)
    listener.spin_for(0.3)  # callbacks for the last samples
    assert player.returncode == 0, err
    return out, err


def receipt_span(listener: Listener, topic: str) -> float:
    times = [t for t, _ in listener.got[topic]]
    return times[-1] - times[0]


# ------------------------------------------------------------------- tests


def test_plays_in_order_with_clock_and_skips_a_missing_type(mcap_bag: Path, listener: Listener) -> None:
    out, err = finish(start_player(mcap_bag), listener)
    chatter = [m.data for m in listener.messages("/chatter")]
    assert chatter == [f"msg {k}" for k in range(20)]
    tracks = listener.messages("/tracks")
    assert [m.objects[0].track_id for m in tracks] == list(range(10))
    assert [stamp_to_ns(m.header.stamp) for m in tracks] == TRACKS
    assert tracks[3].objects[0].class_name == "car" and tracks[3].objects[0].pose.position.x == 3.0
    static = listener.messages("/tf_static")
    assert len(static) == 1 and static[0].transforms[0].child_frame_id == "cam_front_optical"
    clock = [stamp_to_ns(m.clock) for m in listener.messages("/clock")]
    assert len(clock) > 50 and clock == sorted(clock)
    assert clock[0] == T0 and abs(clock[-1] - CHATTER[-1]) < S // 5
    assert 1.5 < receipt_span(listener, "/chatter") < 2.5  # 1.9 s of bag time at rate 1
    assert "/nope" in err and "fake_pkg/msg/Nope" in err and "not importable" in err
    assert "played 31 messages" in out and "/chatter 20" in out and "skipped: /nope" in out


def test_rate_offset_topic_filter_on_sqlite3(tmp_path: Path, listener: Listener) -> None:
    bag = write_bag(tmp_path / "demo_sqlite", StoragePlugin.SQLITE3)
    args = ("--rate", "2", "--start-offset", "0.5", "--topics", "/chatter", "/tf_static")
    out, _ = finish(start_player(bag, *args), listener)
    assert [m.data for m in listener.messages("/chatter")] == [f"msg {k}" for k in range(5, 20)]
    assert listener.messages("/tracks") == []
    # Static transforms recorded before the offset are still sent, latched.
    assert len(listener.messages("/tf_static")) == 1
    span = receipt_span(listener, "/chatter")
    assert 0.5 < span < 0.95, f"1.4 s of bag at rate 2 took {span:.2f} s"
    assert "rate 2." in out or "rate 1.9" in out


def test_loop_repeats_resends_static_and_stops_cleanly_on_ctrl_c(mcap_bag: Path, listener: Listener) -> None:
    player = start_player(mcap_bag, "--loop", "--rate", "2", "--topics", "/chatter", "/tf_static")
    listener.spin_until(lambda: len(listener.got["/chatter"]) >= 25 or player.poll() is not None, 20.0)
    player.send_signal(signal.SIGINT)
    out, err = finish(player, listener, timeout_s=10.0)
    chatter = [m.data for m in listener.messages("/chatter")]
    assert chatter[:20] == [f"msg {k}" for k in range(20)]
    assert chatter[20:25] == [f"msg {k}" for k in range(5)]
    assert len(listener.messages("/tf_static")) >= 2  # re-sent at the start of the second pass
    clock = [stamp_to_ns(m.clock) for m in listener.messages("/clock")]
    assert any(b < a for a, b in itertools.pairwise(clock)), "no backward jump on the loop"
    assert "[stopped]" in out and "2 pass(es)" in out, out + err


# -------------------------------------------------------------- no DDS here


def test_type_resolution_and_options() -> None:
    assert resolve_message_class("std_msgs/msg/String") is String
    assert resolve_message_class("syncl_ros/TrackedObject3DArray") is TrackedObject3DArray
    for bad in ("fake_pkg/msg/Nope", "std_msgs/msg/Nope", "nonsense"):
        with pytest.raises(ImportError):
            resolve_message_class(bad)
    with pytest.raises(ValueError, match="rate"):
        PlayOptions(bag=Path("x"), rate=0)
    with pytest.raises(ValueError, match="start-offset"):
        PlayOptions(bag=Path("x"), start_offset_s=-1)
    stats = PlayStats(published={"/a": 3}, passes=1, wall_s=1.0, bag_s=2.0)
    assert "played 3 messages" in stats.summary(2.0) and "rate 2.00x of 2.00x" in stats.summary(2.0)


def test_ros_args_pass_through_a_subcommand_parser() -> None:
    parser = argparse.ArgumentParser(prog="syncl")
    configure_parser(parser.add_subparsers(dest="command").add_parser("play"))
    args = parser.parse_args(["play", "bag", "--loop", "--ros-args", "-r", "__node:=p", "-p", "a:=1"])
    assert args.loop and args.ros_args == ["-r", "__node:=p", "-p", "a:=1"]


def test_missing_bag_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN))
    cmd = [sys.executable, "-m", "syncl_ros.ros.play_cli", str(tmp_path / "nothing")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "does not exist" in done.stderr
