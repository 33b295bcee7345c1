"""Ego poses through gaps in the pose stream: up to the limit the last motion is continued (a
constant turn stays within a centimetre), beyond it lookups fail as a gap, and poses returning
after such a gap are reported once. Real TfBuffer and odometry sources."""

from __future__ import annotations

import math

import numpy as np
import pytest

from syncl_ros.geometry import Transform, interpolate
from syncl_ros.model.config import InputConfig
from syncl_ros.pipeline.ego_gaps import EgoPoseBridge, EgoPoseGapError, continue_motion
from syncl_ros.pipeline.frame_inputs import FrameError, assemble
from syncl_ros.pipeline.tf_buffer import (
    FutureExtrapolationError,
    OdometryEgoSource,
    PastExtrapolationError,
    TfBuffer,
    TfEgoSource,
    UnknownFrameError,
)

S = 1_000_000_000
MS = 1_000_000
T0 = 1_600_000_000 * S
SPEED, YAW_RATE = 10.0, 0.5  # m/s, rad/s: a car in a steady left turn (radius 20 m)
MAP_TO_ODOM = Transform.from_xy_yaw(100.0, -20.0, 0.3, z=1.0)
LIMIT_NS = 300 * MS


def odom_pose(t_ns: int) -> Transform:
    """base_link in odom at ``t_ns``: constant speed and yaw rate from the origin at T0."""
    yaw = YAW_RATE * (t_ns - T0) / S
    radius = SPEED / YAW_RATE
    return Transform.from_xy_yaw(radius * math.sin(yaw), radius * (1.0 - math.cos(yaw)), yaw)


def map_pose(t_ns: int) -> Transform:
    return MAP_TO_ODOM @ odom_pose(t_ns)


def tf_bridge(last_ns: int, rate_hz: int = 50) -> EgoPoseBridge:
    """map -> odom (static), odom -> base_link at ``rate_hz`` from T0 to ``last_ns``."""
    buf = TfBuffer()
    buf.set_transform("map", "odom", 0, MAP_TO_ODOM, static=True)
    for t in range(T0, last_ns + 1, S // rate_hz):
        buf.set_transform("odom", "base_link", t, odom_pose(t))
    return EgoPoseBridge(TfEgoSource(buf, "map", "base_link"), LIMIT_NS)


def assert_close(got: Transform, want: Transform, metres: float, radians: float) -> None:
    assert np.linalg.norm(got.translation - want.translation) < metres, (got, want)
    assert abs(math.remainder(got.yaw - want.yaw, math.tau)) < radians, (got, want)


def test_continuing_a_constant_turn_follows_its_arc() -> None:
    t0, t1, t = T0, T0 + 100 * MS, T0 + 350 * MS
    got = continue_motion(t0, map_pose(t0), t1, map_pose(t1), t)
    assert_close(got, map_pose(t), metres=0.01, radians=1e-6)
    # Extrapolating the world position along a line would cut the corner by decimetres.
    straight = interpolate(t0, map_pose(t0), t1, map_pose(t1), t, max_extrapolation_ns=t - t1)
    assert np.linalg.norm(straight.translation - map_pose(t).translation) > 0.1


def test_a_short_tf_gap_continues_the_last_motion() -> None:
    last = T0 + 2 * S
    bridge = tf_bridge(last)
    for gap_ms in (5, 50, 170, 300):
        t = last + gap_ms * MS
        assert_close(bridge.ego_pose(t), map_pose(t), metres=0.02, radians=1e-3)
    assert bridge.extrapolated == 4 and bridge.last_gap_ns == LIMIT_NS
    inside = last - 30 * MS  # measured poses are the buffer's own
    assert bridge.ego_pose(inside).allclose(bridge.source.ego_pose(inside))
    assert bridge.extrapolated == 4 and not bridge.take_return()


def test_an_odometry_gap_continues_the_motion_between_its_last_two_poses() -> None:
    odom = OdometryEgoSource("odom", "base_link")
    last = T0 + S
    for t in range(T0, last + 1, S // 10):
        odom.add(t, odom_pose(t))
    bridge = EgoPoseBridge(odom, LIMIT_NS)
    t = last + 250 * MS
    assert_close(bridge.ego_pose(t), odom_pose(t), metres=0.02, radians=1e-3)


def test_beyond_the_limit_frames_are_lost_and_the_return_is_reported_once() -> None:
    last = T0 + S
    bridge = tf_bridge(last)
    with pytest.raises(EgoPoseGapError, match="301 ms past the newest"):
        bridge.ego_pose(last + LIMIT_NS + MS)
    # The frame that needs it is dropped as an ego pose gap, not blamed on a camera.
    with pytest.raises(FrameError) as err:
        assemble(["CAM_FRONT"], {}, {}, last + S, {}, {}, bridge.ego_pose, InputConfig())
    assert (err.value.reason, err.value.channel) == ("ego_pose_gap", None)
    assert bridge.extrapolated == 0 and not bridge.take_return()
    buf = bridge.source.buffer  # type: ignore[attr-defined]
    for t in range(last + S, last + 2 * S, S // 50):  # poses again, a second later
        buf.set_transform("odom", "base_link", t, odom_pose(t))
    bridge.ego_pose(last + S + 10 * MS)
    assert bridge.take_return() and not bridge.take_return()
    bridge.ego_pose(last + S + 20 * MS)
    assert not bridge.take_return()


def test_a_bridged_lookup_also_ends_a_lost_gap() -> None:
    last = T0 + S
    bridge = tf_bridge(last)
    with pytest.raises(EgoPoseGapError):
        bridge.ego_pose(last + S)
    buf = bridge.source.buffer  # type: ignore[attr-defined]
    for t in range(last + S, last + S + 200 * MS + 1, S // 50):
        buf.set_transform("odom", "base_link", t, odom_pose(t))
    bridge.ego_pose(last + S + 250 * MS)  # 50 ms past the returned poses
    assert bridge.extrapolated == 1 and bridge.take_return()


def test_without_poses_to_continue_the_source_error_stands() -> None:
    empty = EgoPoseBridge(TfEgoSource(TfBuffer(), "map", "base_link"), LIMIT_NS)
    with pytest.raises(UnknownFrameError):
        empty.ego_pose(T0)
    bridge = tf_bridge(T0 + S)
    with pytest.raises(PastExtrapolationError):
        bridge.ego_pose(T0 - MS)
    single = EgoPoseBridge(OdometryEgoSource("odom", "base_link"), LIMIT_NS)
    single.source.add(T0, odom_pose(T0))  # type: ignore[attr-defined]
    with pytest.raises(FutureExtrapolationError):  # one pose says nothing about the motion
        single.ego_pose(T0 + 10 * MS)
    assert not isinstance(FutureExtrapolationError("x"), EgoPoseGapError)


def test_a_zero_limit_never_extrapolates_and_clear_forgets_a_lost_gap() -> None:
    bridge = tf_bridge(T0 + S)
    bridge.max_gap_ns = 0
    with pytest.raises(EgoPoseGapError):
        bridge.ego_pose(T0 + S + MS)
    bridge.clear()  # a backward time jump: poses and the lost gap are forgotten
    buf = bridge.source.buffer  # type: ignore[attr-defined]
    assert not buf.has_frame("base_link")
    buf.set_transform("odom", "base_link", T0, odom_pose(T0))
    bridge.ego_pose(T0)
    assert not bridge.take_return()
