"""Conversions to and from ROS messages: tracks, markers, images, camera info, diagnostics."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
import rclpy  # noqa: F401  make setup installs it: a missing rclpy fails, never skips
from numpy.typing import NDArray
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from syncl_ros.msg import TrackedObject3D, TrackedObject3DArray
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker

from syncl_ros.classes import CLASS_COLORS, DETECTION_CLASSES, LABEL_OF
from syncl_ros.geometry import Transform
from syncl_ros.model.config import InputConfig
from syncl_ros.model.inputs import decode_reduction
from syncl_ros.pipeline.frame_inputs import prepare_camera_image
from syncl_ros.pipeline.images import ImageDecodeError, decode_compressed_image, image_to_rgb
from syncl_ros.pipeline.sync import RigSynchronizer
from syncl_ros.ros.markers import MarkerPublisherState, marker_id
from syncl_ros.ros.messages import (
    ERROR,
    camera_info_to_intrinsics,
    diagnostic_array,
    diagnostic_status,
    ns_to_stamp,
    stamp_to_ns,
    tracks_to_detections,
    tracks_to_msg,
)
from syncl_ros.tracking.interface import Track

STAMP = 1_533_151_603_512_404_000


def track(track_id: int, class_name: str, box: list[float], **kw: object) -> Track:
    fields: dict[str, Any] = dict(score=0.8, age=3, hits=3, frames_since_update=0)
    fields.update(kw)
    return Track(
        track_id=track_id,
        uuid=bytes(range(track_id, track_id + 16)),
        label=LABEL_OF[class_name],
        class_name=class_name,
        box=np.array(box, dtype=float),
        **fields,
    )


TRACKS = [
    track(7, "car", [10.0, 2.0, 0.8, 4.5, 1.9, 1.6, 0.25, 5.0, 0.0]),
    track(
        12,
        "pedestrian",
        [6.0, -3.0, 0.9, 0.7, 0.6, 1.8, -1.0, 0.0, 0.0],
        score=0.4,
        age=9,
        hits=6,
        frames_since_update=2,
    ),
]


Msg = TypeVar("Msg")


def roundtrip(msg: Msg) -> Msg:
    """Through CDR, as a subscriber would see it."""
    out: Msg = deserialize_message(serialize_message(msg), type(msg))
    return out


# -------------------------------------------------------------------- stamps


def test_stamps_roundtrip() -> None:
    for ns in (0, 1, STAMP, -1, -1_500_000_000):
        stamp = ns_to_stamp(ns)
        assert 0 <= stamp.nanosec < 1_000_000_000 and stamp_to_ns(stamp) == ns
    with pytest.raises(ValueError, match="int32"):
        ns_to_stamp(2**31 * 1_000_000_000)


# -------------------------------------------------------------------- tracks


def test_tracks_to_msg_fills_every_field_in_the_model_frame() -> None:
    msg = roundtrip(tracks_to_msg(TRACKS, STAMP, "base_link"))
    assert isinstance(msg, TrackedObject3DArray)
    assert msg.header.frame_id == "base_link" and stamp_to_ns(msg.header.stamp) == STAMP
    car, ped = msg.objects
    assert car.track_id == 7 and bytes(car.uuid.uuid) == bytes(range(7, 23))
    assert car.label == TrackedObject3D.LABEL_CAR and car.class_name == "car"
    assert car.score == pytest.approx(0.8) and (car.age, car.hits, car.frames_since_update) == (3, 3, 0)
    p = car.pose.position
    assert (p.x, p.y, p.z) == pytest.approx((10.0, 2.0, 0.8))
    q = car.pose.orientation
    assert (q.x, q.y) == (0.0, 0.0) and 2 * math.atan2(q.z, q.w) == pytest.approx(0.25)
    assert (car.size.x, car.size.y, car.size.z) == pytest.approx((4.5, 1.9, 1.6))
    assert (car.velocity.x, car.velocity.y, car.velocity.z) == pytest.approx((5.0, 0.0, 0.0))
    assert not car.has_covariance and not np.any(car.pose_covariance)
    assert ped.label == TrackedObject3D.LABEL_PEDESTRIAN and ped.frames_since_update == 2
    assert ped.score == pytest.approx(0.4) and (ped.age, ped.hits) == (9, 6)


def test_world_frame_output_moves_centers_and_rotates_velocity() -> None:
    ego = Transform.from_xy_yaw(100.0, 50.0, math.pi / 2)  # base_link -> map
    msg = tracks_to_msg(TRACKS, STAMP, "map", to_output=ego)
    car = msg.objects[0]
    p, v, q = car.pose.position, car.velocity, car.pose.orientation
    assert (p.x, p.y, p.z) == pytest.approx((100.0 - 2.0, 50.0 + 10.0, 0.8))
    assert (v.x, v.y, v.z) == pytest.approx((0.0, 5.0, 0.0), abs=1e-9)
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(0.25 + math.pi / 2)
    assert msg.header.frame_id == "map" and car.size.x == pytest.approx(4.5)
    # A pitched ego keeps the box upright: the orientation stays a rotation about z.
    pitched = Transform(Transform.from_tq([0, 0, 0], [0.996, 0.0, 0.087, 0.0]).rotation, np.zeros(3))
    q = tracks_to_msg(TRACKS, STAMP, "map", to_output=pitched).objects[0].pose.orientation
    assert (q.x, q.y) == pytest.approx((0.0, 0.0))


def test_tracks_to_detections() -> None:
    ego = Transform.from_xy_yaw(1.0, 0.0, 0.0)
    msg = roundtrip(tracks_to_detections(TRACKS, STAMP, "map", to_output=ego))
    assert isinstance(msg, Detection3DArray) and msg.header.frame_id == "map"
    det = msg.detections[1]
    assert det.id == "12" and len(det.results) == 1
    assert det.results[0].hypothesis.class_id == "pedestrian"
    assert det.results[0].hypothesis.score == pytest.approx(0.4)
    assert det.bbox.center.position.x == pytest.approx(7.0)
    assert det.results[0].pose.pose.position.x == pytest.approx(7.0)
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == pytest.approx((0.7, 0.6, 1.8))
    assert tracks_to_detections([], STAMP, "map").detections == []


# ------------------------------------------------------------------- markers


def by_key(markers: list[Marker]) -> dict[tuple[str, int, int], Marker]:
    return {(m.ns, m.id, m.action): m for m in markers}


def test_markers_are_stable_and_ended_tracks_get_deleted() -> None:
    state = MarkerPublisherState()
    first = roundtrip(state.update(TRACKS, STAMP, "base_link")).markers
    kinds = sorted((m.ns, m.type) for m in first)
    assert kinds == [
        ("tracks/boxes", Marker.CUBE),
        ("tracks/boxes", Marker.CUBE),
        ("tracks/labels", Marker.TEXT_VIEW_FACING),
        ("tracks/labels", Marker.TEXT_VIEW_FACING),
        ("tracks/velocity", Marker.ARROW),  # only the moving car has an arrow
    ]
    car_box = by_key(first)[("tracks/boxes", marker_id(7), Marker.ADD)]
    assert (car_box.scale.x, car_box.scale.y, car_box.scale.z) == pytest.approx((4.5, 1.9, 1.6))
    assert (car_box.color.r, car_box.color.g, car_box.color.b) == pytest.approx(CLASS_COLORS["car"])
    label = by_key(first)[("tracks/labels", marker_id(7), Marker.ADD)]
    assert label.text == "7 car 18 km/h"

    # The car stops and the pedestrian's track ends.
    stopped = [track(7, "car", [11.0, 2.0, 0.8, 4.5, 1.9, 1.6, 0.25, 0.0, 0.0])]
    second = state.update(stopped, STAMP + 1, "base_link").markers
    deletes = {(m.ns, m.id) for m in second if m.action == Marker.DELETE}
    assert deletes == {
        ("tracks/boxes", marker_id(12)),
        ("tracks/labels", marker_id(12)),
        ("tracks/velocity", marker_id(7)),
    }
    ids = {(m.ns, m.id) for m in second if m.action == Marker.ADD}
    assert ids == {("tracks/boxes", marker_id(7)), ("tracks/labels", marker_id(7))}  # same ids as before

    reset = state.reset(STAMP + 2, "base_link").markers
    assert [(m.action, m.ns) for m in reset] == [(Marker.DELETEALL, "")]
    third = state.update(stopped, STAMP + 3, "base_link").markers
    assert all(m.action == Marker.ADD for m in third)  # nothing left to delete after DELETEALL
    assert marker_id(2**31 + 5) == 5 and set(CLASS_COLORS) == set(DETECTION_CLASSES)


# -------------------------------------------------------------------- images


def jpeg_message(width: int = 1600, height: int = 900, fmt: str = "jpeg") -> CompressedImage:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (255, 0, 0)  # left half red, right half blue
    rgb[:, width // 2 :] = (0, 0, 255)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return CompressedImage(format=fmt, data=data.tobytes())


def test_jpeg_decodes_at_reduced_scale_keeping_the_requested_width() -> None:
    msg = jpeg_message()
    assert [decode_reduction(1600, w) for w in (None, 200, 201, 400, 800, 1600)] == [1, 8, 4, 4, 2, 1]
    assert decode_reduction(1599, 400) == 4  # libjpeg decodes 1599 / 4 to 400 columns
    out = decode_compressed_image(msg, min_width=400)
    assert out.reduction == 4 and out.rgb.shape == (225, 400, 3) and out.rgb.dtype == np.uint8
    assert (out.full_width, out.full_height) == (1600, 900)
    assert np.allclose(out.rgb[100, 50], (255, 0, 0), atol=8)  # RGB order, not BGR
    assert np.allclose(out.rgb[100, 350], (0, 0, 255), atol=8)
    full = decode_compressed_image(jpeg_message(fmt="rgb8; jpeg compressed bgr8"))
    assert full.reduction == 1 and full.rgb.shape == (900, 1600, 3)


NO_SOF = b"\xff\xd8\xff\xda\x00\x02" + bytes(8) + b"\xff\xd9"  # scan data without a frame header


def test_corrupt_or_unsupported_compressed_images_raise() -> None:
    good = bytes(jpeg_message().data)
    cases = {
        "start like jpeg": CompressedImage(format="jpeg", data=b"\x00garbage" * 10),
        "truncated": CompressedImage(format="jpeg", data=good[: len(good) // 2]),
        "but the data is jpeg": CompressedImage(format="png", data=good),
        "depth images": CompressedImage(format="16UC1; compressedDepth png", data=good),
        "supported: jpeg, png": CompressedImage(format="tiff", data=good),
        "no frame header": CompressedImage(format="jpeg", data=NO_SOF),
    }
    for match, msg in cases.items():
        with pytest.raises(ImageDecodeError, match=match):
            decode_compressed_image(msg, min_width=400)


def jpeg_header_only(width: int, height: int) -> bytes:
    """A JPEG frame header (SOF0, three components) with no image data: it cannot be decoded."""
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    components = b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8\xff\xc0\x00\x11\x08" + size + b"\x03" + components + b"\xff\xd9"


def test_an_image_is_decoded_only_when_its_header_matches_the_camera_info() -> None:
    cfg = InputConfig()
    good = prepare_camera_image(jpeg_message(), "compressed", cfg, (1600, 900))
    assert good.problem is None and good.pixels is not None
    assert good.pixels.shape == (3, cfg.height, cfg.width)
    # A valid 8x65500 JPEG (~90 KB) would be resized to 352 x 2,882,000 pixels; a header alone
    # cannot be decoded at all, so a size_mismatch (not a decode_error) shows nothing was decoded.
    tall = cv2.imencode(".jpg", np.full((65500, 8, 3), 90, np.uint8))[1].tobytes()
    png = cv2.imencode(".png", np.zeros((90, 160, 3), np.uint8))[1].tobytes()
    cases = {
        (8, 65500): CompressedImage(format="jpeg", data=tall),
        (8, 65501): CompressedImage(format="jpeg", data=jpeg_header_only(8, 65501)),
        (800, 450): jpeg_message(800, 450),
        (160, 90): CompressedImage(format="png", data=png),
    }
    for (w, h), msg in cases.items():
        out = prepare_camera_image(msg, "compressed", cfg, (1600, 900))
        assert out.pixels is None and (out.width, out.height) == (w, h)
        assert out.problem == ("size_mismatch", f"image is {w}x{h} but CameraInfo says 1600x900")
    header = CompressedImage(format="jpeg", data=jpeg_header_only(1600, 900))
    problem = prepare_camera_image(header, "compressed", cfg, (1600, 900)).problem
    assert problem is not None and problem[0] == "decode_error"
    no_info = prepare_camera_image(jpeg_message(), "compressed", cfg, None)
    assert no_info.pixels is None and no_info.problem is not None and no_info.problem[0] == "no_camera_info"


def test_a_raw_image_is_converted_only_when_its_fields_match_the_camera_info() -> None:
    cfg = InputConfig()
    tall = Image(height=65500, width=8, encoding="rgb8", step=24, data=bytes(24 * 65500))
    out = prepare_camera_image(tall, "raw", cfg, (1600, 900))
    assert out.pixels is None
    assert out.problem == ("size_mismatch", "image is 8x65500 but CameraInfo says 1600x900")
    short = Image(height=900, width=1600, encoding="rgb8", step=1600 * 3, data=bytes(1000))
    out = prepare_camera_image(short, "raw", cfg, (1600, 900))
    assert out.pixels is None and out.problem is not None
    assert out.problem[0] == "decode_error" and "expected step" in out.problem[1]
    good = Image(height=900, width=1600, encoding="rgb8", step=1600 * 3, data=bytes(1600 * 900 * 3))
    assert prepare_camera_image(good, "raw", cfg, (1600, 900)).problem is None


def raw_image(encoding: str, channels: int, pad: int = 0) -> tuple[Image, NDArray[np.uint8]]:
    h, w = 4, 5
    pixels = np.arange(h * w * channels, dtype=np.uint8).reshape(h, w, channels)
    rows = np.concatenate([pixels.reshape(h, -1), np.full((h, pad), 99, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=w * channels + pad, data=rows.tobytes())
    return msg, pixels


def test_raw_images_to_rgb() -> None:
    msg, pixels = raw_image("rgb8", 3, pad=3)
    assert np.array_equal(image_to_rgb(msg), pixels)
    msg, pixels = raw_image("bgr8", 3)
    assert np.array_equal(image_to_rgb(msg), pixels[:, :, ::-1])
    msg, pixels = raw_image("mono8", 1, pad=1)
    out = image_to_rgb(msg)
    assert out.shape == (4, 5, 3) and np.array_equal(out[:, :, 2], pixels[:, :, 0])


def test_raw_image_errors() -> None:
    msg, _ = raw_image("bayer_rggb8", 1)
    with pytest.raises(ImageDecodeError, match="unsupported image encoding 'bayer_rggb8'"):
        image_to_rgb(msg)
    msg, _ = raw_image("rgb8", 3)
    msg.step = 10
    with pytest.raises(ImageDecodeError, match="shorter than"):
        image_to_rgb(msg)
    msg, _ = raw_image("rgb8", 3)
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ImageDecodeError, match="expected step"):
        image_to_rgb(msg)


def test_camera_info_to_intrinsics() -> None:
    info = CameraInfo(width=1600, height=900)
    info.header.frame_id = "cam_front_optical"
    info.k = [1266.4, 0.0, 816.3, 0.0, 1266.4, 491.5, 0.0, 0.0, 1.0]
    cam = camera_info_to_intrinsics(info)
    assert cam.K.shape == (3, 3) and cam.K[0, 2] == pytest.approx(816.3)
    assert cam.K[1, 1] == pytest.approx(1266.4)
    assert (cam.width, cam.height, cam.frame_id) == (1600, 900, "cam_front_optical")
    with pytest.raises(ValueError, match="not calibrated"):
        camera_info_to_intrinsics(CameraInfo(width=1600, height=900))


# --------------------------------------------------------------- diagnostics


def test_diagnostics_from_sync_stats() -> None:
    sync = RigSynchronizer()
    sync.add("CAM_FRONT", STAMP, None)
    status = diagnostic_status("rig sync", sync.stats(), level=ERROR, message="no frames", hardware_id="rig")
    msg = roundtrip(diagnostic_array(STAMP, [status]))
    got = msg.status[0]
    assert got.level == bytes([ERROR]) and got.name == "rig sync" and got.message == "no frames"
    values = {kv.key: kv.value for kv in got.values}
    assert values["cameras.CAM_FRONT.received"] == "1" and values["last_spread_ms"] == "n/a"
    assert values["cameras.CAM_BACK.dropped.missing"] == "0" and "cameras.CAM_BACK.evicted" in values
    with pytest.raises(ValueError, match="level"):
        diagnostic_status("x", {}, level=7)
