"""Bad input to the tracker node is counted and logged, never fatal: the same node instance
keeps processing good frames afterwards. The node runs in-process (real rclpy node, real
backend and tracker); messages are handed to its subscription callbacks."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from node_fixtures import active_node, untrained_model
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage

from syncl_ros.geometry import Transform
from syncl_ros.rig import load_rig
from syncl_ros.ros.messages import ns_to_stamp, transform_to_msg
from syncl_ros.ros.node import TrackerNode

pytestmark = pytest.mark.slow  # processes, datasets or training: see `make test-fast`

RIG = load_rig()
PERIOD_NS = 500_000_000  # one frame per processing period, so that each frame is processed
JPEG = cv2.imencode(".jpg", np.full((900, 1600, 3), 90, np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained_model(tmp_path_factory.mktemp("m") / "bad-input.pt")


@pytest.fixture()
def node(model: Path, request: pytest.FixtureRequest) -> Iterator[TrackerNode]:
    settings = {"image_transport": "compressed", "tf_wait_ms": 20.0, "max_wait_ms": 50.0}
    with active_node(model, {**settings, **getattr(request, "param", {})}) as n:
        n._on_tf(static_tf(), static=True)
        yield n


def static_tf() -> TFMessage:
    msg = TFMessage()
    for cam in RIG.cameras:
        t = TransformStamped(child_frame_id=cam.frame_id, transform=transform_to_msg(cam.to_base()))
        t.header.frame_id = "base_link"
        msg.transforms.append(t)
    return msg


def ego_tf(stamp_ns: int) -> TFMessage:
    t = TransformStamped(
        child_frame_id="base_link",
        transform=transform_to_msg(Transform.from_xy_yaw(stamp_ns * 5e-9, 0.0, 0.0)),
    )
    t.header.frame_id, t.header.stamp = "map", ns_to_stamp(stamp_ns)
    return TFMessage(transforms=[t])


def camera_info(cam: Any, stamp_ns: int, fx: float | None = None) -> CameraInfo:
    info = CameraInfo(width=cam.width, height=cam.height)
    info.header.frame_id, info.header.stamp = cam.frame_id, ns_to_stamp(stamp_ns)
    K = cam.intrinsics()
    if fx is not None:
        K[0, 0] = fx
    info.k = K.flatten().tolist()
    info.p = np.hstack([K, np.zeros((3, 1))]).flatten().tolist()
    return info


def jpeg_msg(cam: Any, stamp_ns: int, data: bytes = JPEG) -> CompressedImage:
    msg = CompressedImage(format="jpeg", data=data)
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), cam.frame_id
    return msg


def send_frame(
    node: Any,
    stamp_ns: int,
    skip: tuple[str, ...] = (),
    jpeg: dict[str, bytes] | None = None,
    infos: bool = True,
    tf: bool = True,
    raw: Image | None = None,
    wait: bool = True,
) -> None:
    """All six cameras (at their rig offsets), CameraInfo and the ego pose for one rig frame."""
    for cam in RIG.cameras:
        t = stamp_ns + cam.capture_offset_ns
        if tf:
            node._on_tf(ego_tf(t))
        if infos:
            node._on_info(cam.channel, camera_info(cam, t))
    for cam in RIG.cameras:
        if cam.channel in skip:
            continue
        t = stamp_ns + cam.capture_offset_ns
        if raw is not None:
            raw.header.stamp = ns_to_stamp(t)
            msg = raw
        else:
            msg = jpeg_msg(cam, t, (jpeg or {}).get(cam.channel, JPEG))
        node._on_image(cam.channel, msg)
    time.sleep(0.08)
    node._poll()  # resolves a frame that waits for a missing camera
    assert not wait or node.pipeline.worker.wait_idle(30.0)


def counts(node: Any) -> dict[str, int]:
    counts: dict[str, int] = node.pipeline.counts
    return counts


def processed(node: Any) -> int:
    return counts(node)["frames.processed"]


def test_good_frames_are_processed(node: Any) -> None:
    for i in range(3):
        send_frame(node, 10**18 + i * PERIOD_NS)
    assert processed(node) == 3


def test_a_corrupt_jpeg_leaves_its_camera_out_of_the_frame(node: Any) -> None:
    send_frame(node, 10**18, jpeg={"CAM_BACK": b"\xff\xd8garbage"})
    assert counts(node)["frames.without.decode_error.CAM_BACK"] == 1 and processed(node) == 1
    assert counts(node)["frames.degraded"] == 1 and counts(node)["images.decode_error.CAM_BACK"] == 1
    send_frame(node, 10**18 + PERIOD_NS)
    assert processed(node) == 2 and counts(node)["frames.degraded"] == 1


STRICT = {"min_frame_cameras": 6}


@pytest.mark.parametrize("node", [STRICT], indirect=True)
def test_with_every_camera_required_a_corrupt_jpeg_drops_the_frame(node: Any) -> None:
    send_frame(node, 10**18, jpeg={"CAM_BACK": b"\xff\xd8garbage"})
    assert counts(node)["frames.dropped.decode_error.CAM_BACK"] == 1 and processed(node) == 0
    send_frame(node, 10**18 + PERIOD_NS, skip=("CAM_BACK_RIGHT",))
    assert node.pipeline.sync.stats()["frames_dropped"] == 1 and processed(node) == 0
    send_frame(node, 10**18 + 2 * PERIOD_NS)
    assert processed(node) == 1


def test_a_wrong_image_size_leaves_its_camera_out_of_the_frame(node: Any) -> None:
    small = cv2.imencode(".jpg", np.zeros((450, 800, 3), np.uint8))[1].tobytes()
    send_frame(node, 10**18, jpeg={"CAM_FRONT_LEFT": small})
    assert counts(node)["frames.without.size_mismatch.CAM_FRONT_LEFT"] == 1 and processed(node) == 1


def test_image_size_is_checked_before_decoding(node: Any) -> None:
    # A header declaring 8x65500 pixels, without image data: decoding it would be a decode_error.
    size = (65500).to_bytes(2, "big") + (8).to_bytes(2, "big")
    header = b"\xff\xd8\xff\xc0\x00\x11\x08" + size + b"\x03\x01\x11\x00\x02\x11\x00\x03\x11\x00\xff\xd9"
    send_frame(node, 10**18, jpeg={"CAM_BACK": header})
    assert counts(node)["frames.without.size_mismatch.CAM_BACK"] == 1
    assert "frames.without.decode_error.CAM_BACK" not in counts(node)


def test_images_that_arrive_before_their_camera_info_are_prepared_with_their_frame(node: Any) -> None:
    stamps = {cam.channel: 10**18 + cam.capture_offset_ns for cam in RIG.cameras}
    anchor, *others = RIG.cameras  # the frame waits for its anchor: it arrives last
    for cam in RIG.cameras:
        node._on_tf(ego_tf(stamps[cam.channel]))
    for cam in others:
        node._on_image(cam.channel, jpeg_msg(cam, stamps[cam.channel]))
    for cam in RIG.cameras:
        node._on_info(cam.channel, camera_info(cam, stamps[cam.channel]))
    node._on_image(anchor.channel, jpeg_msg(anchor, stamps[anchor.channel]))
    time.sleep(0.08)
    node._poll()
    assert node.pipeline.worker.wait_idle(30.0)
    assert processed(node) == 1, dict(counts(node))


def test_each_kind_of_warning_is_logged_on_its_own_throttle(
    node: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    small = cv2.imencode(".jpg", np.zeros((450, 800, 3), np.uint8))[1].tobytes()
    send_frame(node, 10**18, jpeg={"CAM_BACK": b"\xff\xd8garbage"})
    send_frame(node, 10**18 + PERIOD_NS, jpeg={"CAM_BACK": b"\xff\xd8garbage"})  # throttled
    send_frame(node, 10**18 + 2 * PERIOD_NS, skip=("CAM_BACK_RIGHT",))  # dropped by the synchronizer
    send_frame(node, 10**18 + 3 * PERIOD_NS, jpeg={"CAM_FRONT_LEFT": small})
    warnings = [line for line in capfd.readouterr().err.splitlines() if "WARN" in line]
    for key in (
        "frames.without.decode_error.CAM_BACK: 1]",
        "sync.dropped.missing.CAM_BACK_RIGHT: 1]",
        "frames.without.missing.CAM_BACK_RIGHT: 1]",
        "frames.without.size_mismatch.CAM_FRONT_LEFT: 1]",
    ):
        assert sum(key in line for line in warnings) == 1, (key, warnings)
    assert not any("decode_error.CAM_BACK: 2]" in line for line in warnings), warnings
    assert counts(node)["frames.without.decode_error.CAM_BACK"] == 2


def test_missing_camera_info_and_missing_tf_are_dropped_and_counted(node: Any) -> None:
    send_frame(node, 10**18, infos=False)
    assert sum(v for k, v in counts(node).items() if k.startswith("frames.dropped.no_camera_info")) == 1
    send_frame(node, 10**18 + PERIOD_NS, tf=False)  # poses stopped half a period ago: a gap
    assert counts(node)["frames.dropped.ego_pose_gap"] == 1
    send_frame(node, 10**18 + 2 * PERIOD_NS)
    assert processed(node) == 1


def test_a_frame_before_any_ego_pose_is_dropped_and_counted(node: Any) -> None:
    send_frame(node, 10**18, tf=False)
    assert counts(node)["frames.dropped.no_ego_pose"] == 1 and processed(node) == 0


def test_a_short_tf_gap_continues_the_ego_motion(node: Any) -> None:
    send_frame(node, 10**18)
    node._on_tf(ego_tf(10**18 + PERIOD_NS - 200_000_000))  # then /tf pauses for 0.2 s and more
    send_frame(node, 10**18 + PERIOD_NS, tf=False)
    assert processed(node) == 2 and counts(node)["frames.ego_pose_extrapolated"] == 1
    assert not any(k.startswith("frames.dropped") for k in counts(node)), dict(counts(node))


def test_a_long_tf_gap_drops_frames_and_the_tracker_restarts_when_poses_return(
    node: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    send_frame(node, 10**18)
    send_frame(node, 10**18 + PERIOD_NS, tf=False)
    send_frame(node, 10**18 + 2 * PERIOD_NS, tf=False)
    assert counts(node)["frames.dropped.ego_pose_gap"] == 2 and processed(node) == 1
    assert "frames.ego_pose_extrapolated" not in counts(node)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "WARN" in line]
    assert sum("frames.dropped.ego_pose_gap: 1]" in line for line in warnings) == 1, warnings
    resets = node.pipeline.tracker.resets
    send_frame(node, 10**18 + 3 * PERIOD_NS)
    assert processed(node) == 2 and counts(node)["resets.ego_pose_gap"] == 1
    tracker = node.pipeline.tracker
    assert tracker.resets == resets + 1 and tracker.last_reset_reason == "requested"
    send_frame(node, 10**18 + 4 * PERIOD_NS)
    assert counts(node)["resets.ego_pose_gap"] == 1 and node.pipeline.tracker.resets == resets + 1


def test_a_camera_missing_in_the_synchronizer_is_left_out_of_the_frame(node: Any) -> None:
    send_frame(node, 10**18, skip=("CAM_BACK_RIGHT",))
    assert node.pipeline.sync.stats()["cameras"]["CAM_BACK_RIGHT"]["dropped"]["missing"] == 1
    assert processed(node) == 1 and counts(node)["frames.without.missing.CAM_BACK_RIGHT"] == 1
    send_frame(node, 10**18 + PERIOD_NS)
    assert processed(node) == 2


def test_a_frames_missing_cameras_are_counted_with_the_frame(node: Any) -> None:
    """Diagnostics read while a frame is tracked never show its missing cameras without it."""
    seen: list[tuple[int, int]] = []
    track = node.pipeline.frames.track

    def observed_track(inputs: Any) -> Any:
        c = counts(node)
        seen.append((c["frames.processed"], c["frames.without.missing.CAM_BACK_RIGHT"]))
        return track(inputs)

    node.pipeline.frames.track = observed_track
    send_frame(node, 10**18, skip=("CAM_BACK_RIGHT",))
    assert seen == [(0, 0)]
    assert processed(node) == 1 and counts(node)["frames.without.missing.CAM_BACK_RIGHT"] == 1


def test_out_of_order_image_is_discarded(node: Any) -> None:
    send_frame(node, 10**18 + PERIOD_NS)
    old = CompressedImage(format="jpeg", data=JPEG)
    old.header.stamp = ns_to_stamp(10**18 + PERIOD_NS - 10**8)
    node._on_image("CAM_BACK", old)
    assert node.pipeline.sync.stats()["cameras"]["CAM_BACK"]["dropped"]["out_of_order"] == 1
    send_frame(node, 10**18 + 2 * PERIOD_NS)
    assert processed(node) == 2


def test_backward_time_jump_resets_the_tracker(node: Any) -> None:
    send_frame(node, 10**18 + 10 * PERIOD_NS)
    send_frame(node, 10**18 + 11 * PERIOD_NS)
    send_frame(node, 10**18)  # a bag loop
    assert counts(node)["resets.time_jump"] == 1
    assert node.pipeline.tracker.resets >= 1
    send_frame(node, 10**18 + PERIOD_NS)
    assert processed(node) == 4


def test_a_reset_survives_the_frame_that_announced_it_being_dropped(node: Any) -> None:
    """A bag loop while the worker is busy: the first frame after the jump is replaced in the
    mailbox by the next one, which must still start the tracker over."""
    send_frame(node, 10**18 + 10 * PERIOD_NS)
    send_frame(node, 10**18 + 11 * PERIOD_NS)
    worker, entered, gate = node.pipeline.worker, threading.Event(), threading.Event()
    handle = worker._handle

    def held(job: Any) -> None:  # the worker busy with a long job
        if job is None:
            entered.set()
            gate.wait(30.0)
        else:
            handle(job)

    worker._handle = held
    worker.submit(None)
    assert entered.wait(30.0)
    resets = node.pipeline.tracker.resets
    send_frame(node, 10**18, wait=False)  # the loop: waits in the mailbox
    send_frame(node, 10**18 + PERIOD_NS, wait=False)  # replaces it
    gate.set()
    assert worker.wait_idle(30.0) and worker.replaced == 1
    assert counts(node)["resets.time_jump"] == 1 and processed(node) == 3, counts(node)
    tracker = node.pipeline.tracker
    assert tracker.resets == resets + 1 and tracker.last_reset_reason == "requested"


def test_calibration_change_is_counted_and_used(node: Any) -> None:
    send_frame(node, 10**18)
    cam = RIG.camera("CAM_FRONT")
    node._on_info("CAM_FRONT", camera_info(cam, 10**18, fx=cam.fx * 1.1))
    assert counts(node)["camera_info.CAM_FRONT.changed"] == 1
    assert node.pipeline.intrinsics["CAM_FRONT"].K[0, 0] == pytest.approx(cam.fx * 1.1)


def test_nan_from_the_model_is_counted_and_ignored(node: Any) -> None:
    real_decode = node.pipeline.backend.decode

    def nan_decode(*args: Any) -> Any:
        out = real_decode(*args)
        out.scores[:5] = np.nan  # a numerical fault in the network
        return out

    node.pipeline.backend.decode = nan_decode
    send_frame(node, 10**18)
    assert counts(node)["model.nonfinite_frames"] == 1 and node.pipeline.tracker.nonfinite_rows >= 5
    assert processed(node) == 1


@pytest.mark.parametrize("node", [{"image_transport": "raw"}], indirect=True)
def test_raw_image_with_unsupported_encoding_is_dropped(node: Any) -> None:
    depth = Image(height=900, width=1600, encoding="32FC1", step=1600 * 4, data=bytes(1600 * 900 * 4))
    send_frame(node, 10**18, raw=depth)
    assert sum(v for k, v in counts(node).items() if k.startswith("frames.dropped.decode_error")) == 1
    rgb = Image(height=900, width=1600, encoding="rgb8", step=1600 * 3, data=bytes(1600 * 900 * 3))
    send_frame(node, 10**18 + PERIOD_NS, raw=rgb)
    assert processed(node) == 1


def test_a_silent_anchor_camera_hands_its_frames_over(node: Any) -> None:
    sweep = 83_000_000  # the rig's 12 Hz; the node processes one frame per 0.5 s period of these
    for k in range(30):
        send_frame(node, 10**18 + k * sweep, skip=("CAM_FRONT",) if k >= 6 else ())
    handed = counts(node)["frames.anchor_handed_over"]
    assert node.pipeline.sync.stats()["frames_handed_over"] >= 20 and handed >= 3, dict(counts(node))
    assert processed(node) == handed + 1  # the first frame, by the anchor; then the others carry on
    assert counts(node)["frames.without.missing.CAM_FRONT"] == handed
