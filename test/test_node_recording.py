"""`syncl record` beside the tracker node (overlay on) and `syncl play`, as separate processes over
DDS: the MCAP it writes is read back with the mcap reader (channels, ros2msg schemas that decode
every message, counts, stamps), and the node's ~/overlay decodes with its boxes where the
published tracks project into the camera."""

import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest
import rclpy
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from numpy.typing import NDArray
from visualization_msgs.msg import Marker

from syncl_ros import boxes as box_ops
from syncl_ros.cli import main as syncl
from syncl_ros.data.synth.writer import write_dataset
from syncl_ros.geometry import Transform, ego_to_image, project
from syncl_ros.model.inputs import Resize
from syncl_ros.ros.processes import (
    NODE_TOPICS,
    ros_env,
    start_node,
    start_player,
    stop,
    wait_for_subscriptions,
)
from syncl_ros.viz.overlay import BOX_EDGES, class_bgr

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

ENV = ros_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
OUTPUTS = [
    "/syncl_tracker/tracks",
    "/syncl_tracker/detections",
    "/syncl_tracker/markers",
    "/syncl_tracker/overlay",
]
SCHEMAS = {
    "/CAM_FRONT/image_rect_compressed": "sensor_msgs/msg/CompressedImage",
    "/CAM_FRONT/camera_info": "sensor_msgs/msg/CameraInfo",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/syncl_tracker/tracks": "syncl_ros/msg/TrackedObject3DArray",
    "/syncl_tracker/detections": "vision_msgs/msg/Detection3DArray",
    "/syncl_tracker/markers": "visualization_msgs/msg/MarkerArray",
    "/syncl_tracker/overlay": "sensor_msgs/msg/CompressedImage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


def stamp(msg: Any) -> int:
    ns: int = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    return ns


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3 s synthetic scene played through the shipped model's node (overlay on) and recorded."""
    root = tmp_path_factory.mktemp("recording")
    data, bag, out = root / "data", root / "bag", root / "rec"
    write_dataset(data, scenes=1, seed=11, split="val", duration_s=3.0, workers=1, progress=False)
    name = json.loads((data / "v1.0-trainval" / "scene.json").read_text())[0]["name"]
    assert syncl(["convert", str(data), "--scene", name, "--out", str(bag), "--no-progress"]) == 0
    params = {"backend": "torch", "overlay": True, "max_wait_ms": 1000.0, "tf_wait_ms": 1000.0}
    node = start_node(params, ENV)
    recorder = subprocess.Popen(
        [sys.executable, "-m", "syncl_ros.cli", "record", str(out), "--use-sim-time"],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )

    rclpy.init()
    graph = rclpy.create_node("syncl_test_graph")
    try:
        # the player waits for a subscriber per topic, which the recorder already is: wait for the node
        assert wait_for_subscriptions(graph, NODE_TOPICS, timeout_s=120)
        # ... and for the recorder too: every topic has both subscribers before the first message
        options = ["--wait-for-subscribers", "60", "--min-subscribers", "2", "--rate", "0.5"]
        options += ["--topics", *NODE_TOPICS]
        player = start_player(bag, options, ENV, quiet=True)
        assert player.wait(timeout=180) == 0
        time.sleep(5.0)  # the last frame may still be in the node's worker
    finally:
        graph.destroy_node()
        rclpy.shutdown()
        stop(recorder)
        stop(node)
    log = recorder.stderr.read() if recorder.stderr else ""
    assert recorder.returncode == 0, log
    return {"mcap": out / "rec.mcap", "bag": bag, "data": data, "log": log}


def read_all(path: Path) -> tuple[Any, dict[str, list[tuple[int, Any]]]]:
    """(summary, topic -> [(log_time, decoded message)]): every message decoded from its schema."""
    by_topic: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            by_topic[channel.topic].append((message.log_time, decoded))
    return summary, by_topic


def is_clear(markers: Any) -> bool:
    """A tracker reset's marker array: one DELETEALL, nothing else."""
    return len(markers.markers) == 1 and markers.markers[0].action == Marker.DELETEALL


def bag_counts(bag: Path) -> Counter[str]:
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        return Counter({c.topic: c.msgcount for c in reader.connections})


def test_recording_has_inputs_and_outputs_with_viewer_schemas(recorded: dict[str, Any]) -> None:
    summary, msgs = read_all(recorded["mcap"])
    channels = {c.topic: c for c in summary.channels.values()}
    assert set(NODE_TOPICS) | set(OUTPUTS) | {"/diagnostics"} <= set(channels), sorted(channels)
    for topic, name in SCHEMAS.items():
        schema = summary.schemas[channels[topic].schema_id]
        assert (schema.name, schema.encoding, channels[topic].message_encoding) == (name, "ros2msg", "cdr")
    markers = summary.schemas[channels["/syncl_tracker/markers"].schema_id].data.decode()
    assert "MSG: visualization_msgs/Marker" in markers and "MSG: geometry_msgs/Pose" in markers

    # every camera message the player sent (reliable end to end), the static tf once, and one of
    # each output per processed frame
    played = bag_counts(recorded["bag"])
    for topic in NODE_TOPICS:
        if topic != "/tf_static":
            assert len(msgs[topic]) == played[topic], (topic, len(msgs[topic]), played[topic])
    assert len(msgs["/tf_static"]) == 1
    frames = len(msgs["/syncl_tracker/tracks"])
    assert frames >= 4, recorded["log"]  # 3 s at the model's 0.5 s period
    # a tracker reset (e.g. a frame dropped for a late ego pose on a loaded machine) publishes a
    # marker clear of its own, a lone DELETEALL, beside the per-frame marker arrays
    frame_markers = [x for x in msgs["/syncl_tracker/markers"] if not is_clear(x[1])]
    per_frame = {**msgs, "/syncl_tracker/markers": frame_markers}
    assert all(len(per_frame[t]) == frames for t in OUTPUTS), {t: len(per_frame[t]) for t in OUTPUTS}
    assert msgs["/diagnostics"]

    # stamps: frames carry their anchor image's capture stamp, the overlay its frame's; log time
    # is the player's /clock, so an output is logged after its capture stamp
    anchors = {stamp(m) for _, m in msgs["/CAM_FRONT/image_rect_compressed"]}
    tracks = [stamp(m) for _, m in msgs["/syncl_tracker/tracks"]]
    assert set(tracks) <= anchors and len(set(tracks)) == frames
    assert [stamp(m) for _, m in msgs["/syncl_tracker/overlay"]] == tracks
    for topic in OUTPUTS[:2]:
        assert all(log >= stamp(m) - 50_000_000 for log, m in msgs[topic]), topic
    first, last = min(anchors), max(anchors)
    assert all(first - 10**9 <= log <= last + 10 * 10**9 for t in msgs for log, _ in msgs[t])


def test_overlay_decodes_and_boxes_land_on_the_tracks(recorded: dict[str, Any]) -> None:
    from nuscenes.nuscenes import NuScenes

    _, msgs = read_all(recorded["mcap"])
    tracks = {stamp(m): m for _, m in msgs["/syncl_tracker/tracks"]}
    nusc = NuScenes("v1.0-trainval", str(recorded["data"]), verbose=False)
    sd = next(s for s in nusc.sample_data if s["channel"] == "CAM_FRONT")
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    hits = checked = 0
    for _, msg in msgs["/syncl_tracker/overlay"]:
        jpeg = np.frombuffer(bytes(msg.data), np.uint8)
        image = cast(NDArray[np.uint8], cv2.imdecode(jpeg, cv2.IMREAD_COLOR))  # color: uint8
        assert msg.format == "jpeg" and image is not None
        tile_h, tile_w = image.shape[0] // 2, image.shape[1] // 3
        assert (tile_w, tile_h) in {(352, 128), (704, 256)}
        # CAM_FRONT, the anchor, is the top-middle tile; tracks are in base_link at its stamp
        resize = Resize.for_input(sd["width"], sd["height"], _input(tile_w, tile_h))
        cam = Transform.from_tq(cs["translation"], cs["rotation"])
        lidar2img = ego_to_image(np.asarray(cs["camera_intrinsic"]), cam, resize.matrix())
        for color in {class_bgr(o.class_name) for o in tracks[stamp(msg)].objects}:
            painted = (np.abs(image.astype(int) - np.array(color)).max(axis=-1) <= 60).mean()
            assert painted < 0.2, "lines, not colour everywhere"
        for obj in tracks[stamp(msg)].objects:
            box = _box(obj)
            corners = box_ops.corners(box[None])[0]
            for i, j in BOX_EDGES:
                uv, depth = project(lidar2img, (corners[i] + corners[j])[None] / 2)
                u, v = uv[0]
                if depth[0] > 1.0 and 3 <= u < tile_w - 3 and 14 <= v < tile_h - 3:
                    checked += 1
                    hits += _near(image, u + tile_w, v, class_bgr(obj.class_name))
    assert checked >= 6, "the shipped model tracks objects in front of the car"
    assert hits >= 0.75 * checked, (hits, checked)


def _input(width: int, height: int) -> Any:
    from syncl_ros.model.config import InputConfig

    return InputConfig(height=height, width=width)


def _box(obj: Any) -> NDArray[np.float64]:
    from pyquaternion import Quaternion

    from syncl_ros.geometry import quaternion_yaw

    q = obj.pose.orientation
    p = obj.pose.position
    yaw = quaternion_yaw(Quaternion(q.w, q.x, q.y, q.z))
    return np.array([p.x, p.y, p.z, obj.size.x, obj.size.y, obj.size.z, yaw, 0.0, 0.0])


def _near(image: NDArray[np.uint8], u: float, v: float, color: tuple[int, int, int], radius: int = 1) -> bool:
    u, v = round(u), round(v)
    patch = image[v - radius : v + radius + 1, u - radius : u + radius + 1].astype(int)
    return bool((np.abs(patch - np.array(color)).max(axis=-1) <= 60).any())
