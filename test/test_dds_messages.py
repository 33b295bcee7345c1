"""The package's messages and vision_msgs cross a process boundary over Fast DDS."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy  # make setup installs it: a missing rclpy fails, never skips
from syncl_ros.msg import TrackedObject3D, TrackedObject3DArray
from vision_msgs.msg import Detection3DArray

PEER = Path(__file__).parent / "peers" / "publish_tracks.py"


def test_tracks_and_detections_cross_processes() -> None:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    peer = subprocess.Popen([sys.executable, str(PEER), "30"], env=env)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("syncl_test_subscriber", context=context)
    got: dict[str, object] = {}

    def on_tracks(msg: TrackedObject3DArray) -> None:
        got.setdefault("tracks", msg)

    def on_detections(msg: Detection3DArray) -> None:
        got.setdefault("dets", msg)

    node.create_subscription(TrackedObject3DArray, "test_tracks", on_tracks, 10)
    node.create_subscription(Detection3DArray, "test_detections", on_detections, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 25.0
        while len(got) < 2 and time.monotonic() < deadline and peer.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        peer.kill()
        peer.wait()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert set(got) == {"tracks", "dets"}, f"received only {sorted(got)}"
    tracks = got["tracks"]
    assert isinstance(tracks, TrackedObject3DArray)
    obj = tracks.objects[0]
    assert obj.track_id == 42 and obj.label == TrackedObject3D.LABEL_PEDESTRIAN
    assert obj.class_name == "pedestrian" and list(obj.uuid.uuid) == list(range(16))
    assert (obj.age, obj.hits, obj.frames_since_update) == (5, 4, 1)
    assert obj.pose.position.y == pytest.approx(-3.25) and obj.size.z == pytest.approx(1.8)
    assert obj.has_covariance and obj.pose_covariance[0] == pytest.approx(0.04)
    dets = got["dets"]
    assert isinstance(dets, Detection3DArray)
    det = dets.detections[0]
    assert det.id == "42" and det.results[0].hypothesis.class_id == "car"
    assert det.bbox.size.x == pytest.approx(4.5)
