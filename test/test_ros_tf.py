"""Transform buffer and ego-pose sources against syncl_ros.geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rclpy  # noqa: F401  make setup installs it: a missing rclpy fails, never skips
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from tf2_msgs.msg import TFMessage

from syncl_ros.geometry import Transform, interpolate
from syncl_ros.pipeline.tf_buffer import (
    ConnectivityError,
    ExtrapolationError,
    FutureExtrapolationError,
    OdometryEgoSource,
    PastExtrapolationError,
    TfBuffer,
    TfEgoSource,
    UnknownFrameError,
)
from syncl_ros.rig import load_rig
from syncl_ros.ros.messages import (
    ns_to_stamp,
    odometry_to_tf,
    pose_to_msg,
    tf_message_to_tf,
    transform_stamped_to_tf,
    transform_to_msg,
)

S = 1_000_000_000
T0 = 1_600_000_000 * S
MAP_TO_ODOM = Transform.from_xy_yaw(100.0, -20.0, 0.3, z=1.0)
POSE_A = Transform.from_xy_yaw(1.0, 2.0, 0.1)
POSE_B = Transform.from_xy_yaw(3.0, 2.5, 0.5)


def rig_buffer() -> tuple[TfBuffer, dict[str, Transform]]:
    """map -> odom (static), odom -> base_link (moving, samples at T0 and T0 + 1 s), base_link -> cameras."""
    buf = TfBuffer()
    buf.set_transform("map", "odom", 0, MAP_TO_ODOM, static=True)
    buf.set_transform("odom", "base_link", T0, POSE_A)
    buf.set_transform("odom", "base_link", T0 + S, POSE_B)
    cams = {}
    for cam in load_rig("rig_nuscenes").cameras:
        cams[cam.frame_id] = cam.to_base()
        buf.set_transform("base_link", cam.frame_id, 0, cam.to_base(), static=True)
    return buf, cams


def test_chain_lookup_matches_composition() -> None:
    buf, cams = rig_buffer()
    mid = T0 + S // 2
    ego = interpolate(T0, POSE_A, T0 + S, POSE_B, mid)
    expected = MAP_TO_ODOM @ ego @ cams["cam_front_optical"]
    got = buf.lookup("map", "cam_front_optical", mid)
    assert got.allclose(expected)
    assert buf.lookup("cam_front_optical", "map", mid).allclose(expected.inverse())
    # Across branches: back camera into the front camera's optical frame.
    across = cams["cam_front_optical"].inverse() @ cams["cam_back_optical"]
    assert buf.lookup("cam_front_optical", "cam_back_optical", mid).allclose(across)
    assert buf.lookup("odom", "odom", mid).allclose(Transform.identity())


def test_interpolation_midway_is_slerp_and_lerp() -> None:
    buf, _ = rig_buffer()
    got = buf.lookup("odom", "base_link", T0 + S // 4)
    assert np.allclose(got.translation, [1.5, 2.125, 0.0])
    assert got.yaw == pytest.approx(0.2)
    assert buf.lookup("odom", "base_link", T0 + S).allclose(POSE_B)


def test_extrapolation_errors_and_tolerance() -> None:
    buf, _ = rig_buffer()
    with pytest.raises(PastExtrapolationError, match="past"):
        buf.lookup("map", "cam_front_optical", T0 - 1)
    with pytest.raises(FutureExtrapolationError, match="future"):
        buf.lookup("map", "base_link", T0 + 2 * S)
    tolerant = TfBuffer(max_extrapolation_ns=S // 10)
    tolerant.set_transform("odom", "base_link", T0, POSE_A)
    tolerant.set_transform("odom", "base_link", T0 + S, POSE_B)
    ahead = tolerant.lookup("odom", "base_link", T0 + S + S // 20)
    assert ahead.translation[0] == pytest.approx(3.1)  # extrapolated along the last motion
    with pytest.raises(ExtrapolationError):
        tolerant.lookup("odom", "base_link", T0 + S + S // 5)
    assert issubclass(ExtrapolationError, LookupError)


def test_static_and_dynamic_edges_and_clear() -> None:
    buf, cams = rig_buffer()
    # Static edges answer at any time; the latest common time of the moving ones is used for None.
    assert buf.lookup("base_link", "cam_back_optical", 123).allclose(cams["cam_back_optical"])
    assert buf.lookup("odom", "base_link").allclose(POSE_B)
    buf.clear()  # a time jump: moving edges go, static ones stay (as in tf2)
    assert buf.can_transform("base_link", "cam_back_optical", 5)
    assert not buf.can_transform("map", "base_link", T0)
    with pytest.raises(ConnectivityError, match="not connected"):
        buf.lookup("map", "cam_front_optical", T0)
    buf.clear(static=True)
    assert buf.frames() == []


def test_time_range_is_the_span_all_moving_edges_on_the_path_share() -> None:
    buf, _ = rig_buffer()
    assert buf.time_range("map", "cam_front_optical") == (T0, T0 + S)
    assert buf.time_range("base_link", "cam_front_optical") is None  # static edges only
    buf.set_transform("base_link", "arm", T0 + S // 2, POSE_A)
    buf.set_transform("base_link", "arm", T0 + 2 * S, POSE_B)
    assert buf.time_range("arm", "map") == (T0 + S // 2, T0 + S)


def test_unknown_frame_and_malformed_input() -> None:
    buf, _ = rig_buffer()
    with pytest.raises(UnknownFrameError, match="'laser' does not exist"):
        buf.lookup("map", "laser", T0)
    with pytest.raises(LookupError):
        buf.lookup("nowhere", "map", T0)
    with pytest.raises(ValueError, match="loop"):
        buf.set_transform("cam_front_optical", "map", T0, Transform.identity())
    with pytest.raises(ValueError, match="itself"):
        buf.set_transform("map", "map", T0, Transform.identity())
    with pytest.raises(ValueError, match="empty frame"):
        buf.set_transform("", "x", T0, Transform.identity())
    bad = Transform.from_xy_yaw(float("nan"), 0.0, 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        buf.set_transform("map", "x", T0, bad)


def test_history_is_bounded_and_a_time_jump_restarts_an_edge() -> None:
    buf = TfBuffer(cache_ns=2 * S)
    for k in range(1000):  # 10 s at 100 Hz
        buf.set_transform("odom", "base_link", T0 + k * S // 100, Transform.from_xy_yaw(k * 0.01, 0.0, 0.0))
    history = buf._edges["base_link"].history
    assert history is not None and len(history) == 201
    with pytest.raises(PastExtrapolationError):
        buf.lookup("odom", "base_link", T0 + 5 * S)
    buf.set_transform("odom", "base_link", T0, POSE_A)  # far older than the window: a new timeline
    assert len(history) == 1 and buf.lookup("odom", "base_link", T0).allclose(POSE_A)


def test_conversions_from_messages_feed_the_buffer() -> None:
    ts = TransformStamped()
    ts.header.frame_id, ts.child_frame_id = "odom", "base_link"
    ts.header.stamp = ns_to_stamp(T0 + 250_000_000)
    ts.transform = transform_to_msg(POSE_A)
    edge = transform_stamped_to_tf(ts)
    assert (edge.parent, edge.child, edge.stamp_ns) == ("odom", "base_link", T0 + 250_000_000)
    assert edge.transform.allclose(POSE_A)

    unset = TransformStamped()
    unset.transform.rotation.w = 0.0
    good, errors = tf_message_to_tf(TFMessage(transforms=[ts, unset]))
    assert len(good) == 1 and len(errors) == 1 and "zero length" in errors[0]

    odom = Odometry()
    odom.header.frame_id, odom.child_frame_id = "odom", "base_link"
    odom.header.stamp = ns_to_stamp(T0)
    odom.pose.pose = pose_to_msg(POSE_B)
    pose = odometry_to_tf(odom)
    assert pose.transform.allclose(POSE_B) and pose.stamp_ns == T0


def test_odometry_source_interpolates_like_the_tf_source() -> None:
    odo = OdometryEgoSource(world_frame="odom", base_frame="base_link")
    with pytest.raises(UnknownFrameError, match="no odometry"):
        odo.ego_pose(T0)
    odo.add(T0, POSE_A, "odom", "base_link")
    odo.add(T0 + S, POSE_B)
    buf, _ = rig_buffer()
    tf_source = TfEgoSource(buf, world_frame="odom", base_frame="base_link")
    for t in (T0, T0 + S // 3, T0 + S):
        assert odo.ego_pose(t).allclose(tf_source.ego_pose(t))
    assert odo.ego_pose(T0 + S // 2).yaw == pytest.approx(0.3)
    with pytest.raises(FutureExtrapolationError):
        odo.ego_pose(T0 + 2 * S)
    with pytest.raises(ValueError, match="child_frame_id"):
        odo.add(T0 + 2 * S, POSE_B, "odom", "imu")
    odo.clear()
    with pytest.raises(UnknownFrameError):
        odo.ego_pose(T0)
    assert math.isfinite(tf_source.ego_pose(T0).yaw)
