"""/tf reaches the node whole even while its executor is busy: a node that falls behind its
callbacks (a loaded machine, a long decode) must still see, and count, every bad transform, and
catch up with the stream in one turn instead of working through it one message per turn.
Real DDS between two contexts of one process: a reliable keep-last-100 writer (the player's
QoS) and the node's own subscription, which is not spun while the transforms arrive."""

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
from geometry_msgs.msg import TransformStamped
from node_fixtures import active_node, untrained_model
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from syncl_ros.ros.messages import ns_to_stamp
from syncl_ros.ros.node import TrackerNode
from syncl_ros.ros.player import TF_DEPTH

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

PLAYER_TF_QOS = QoSProfile(
    depth=TF_DEPTH, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)
SENT = 300  # three times the keep-last depth that /tf readers commonly use


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[TrackerNode]:
    with active_node(untrained_model(tmp_path / "tf.pt"), {}) as n:
        yield n


def nan_tf(i: int) -> TFMessage:
    t = TransformStamped(child_frame_id="base_link")
    t.header.frame_id, t.header.stamp = "map", ns_to_stamp(1_000_000_000 + i * 10_000_000)
    t.transform.translation.x = math.nan
    t.transform.rotation.w = 1.0
    return TFMessage(transforms=[t])


def count_at_first_callback(node: TrackerNode) -> int:
    """Spins the node until its first /tf callback; returns its count of invalid transforms."""
    assert node.pipeline is not None
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        # Until the first /tf callback: it takes what waits behind its message too (rclpy gives a
        # subscription one message per turn, with the node's other callbacks between turns).
        deadline = time.monotonic() + 20.0
        while node.pipeline.counts.get("tf.invalid", 0) == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        counted = node.pipeline.counts.get("tf.invalid", 0)
        for _ in range(20):  # nothing left for later turns: anything more would be a double count
            executor.spin_once(timeout_sec=0.01)
        assert node.pipeline.counts.get("tf.invalid", 0) == counted
        return counted
    finally:
        executor.remove_node(node)
        executor.shutdown()


def test_every_transform_sent_while_the_node_was_busy_is_counted(node: TrackerNode) -> None:
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        sender = rclpy.create_node("tf_sender", context=context)
        pub = sender.create_publisher(TFMessage, "/tf", PLAYER_TF_QOS)
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.get_subscription_count() > 0, "the node's /tf subscription was not discovered"
        for i in range(SENT):
            pub.publish(nan_tf(i))
        time.sleep(1.0)  # delivered into the node's reader while nothing takes from it
        assert count_at_first_callback(node) == SENT
        sender.destroy_node()
    finally:
        rclpy.shutdown(context=context)
