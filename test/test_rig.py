import copy
import math
from typing import Any

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray

from syncl_ros.config import ConfigError, parse, resolve
from syncl_ros.geometry import ego_to_image, project
from syncl_ros.rig import CAMERA_CHANNELS, RigSpec, load_rig


@pytest.fixture(scope="module")
def rig() -> RigSpec:
    return load_rig()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(resolve("rig_nuscenes").read_text())
    return data


def in_image(rig: RigSpec, channel: str, point: NDArray[np.float64]) -> bool:
    cam = rig.camera(channel)
    uv, depth = project(ego_to_image(cam.intrinsics(), cam.to_base()), point[None])
    u, v = uv[0]
    return bool(depth[0] > 0 and 0 <= u < cam.width and 0 <= v < cam.height)


def test_shipped_rig(rig: RigSpec) -> None:
    assert tuple(c.channel for c in rig.cameras) == CAMERA_CHANNELS
    assert rig.base_frame == "base_link"
    assert rig.camera_rate_hz == 12.0 and rig.keyframe_rate_hz == 2.0
    assert all((c.width, c.height) == (1600, 900) for c in rig.cameras)
    assert all(c.frame_id == c.channel.lower() + "_optical" for c in rig.cameras)
    assert rig.lidar.frame_id == "lidar_top"
    assert rig.camera_period_ns == 83_333_333 and rig.keyframe_period_ns == 500_000_000


def test_point_ahead_projects_to_principal_point(rig: RigSpec) -> None:
    cam = rig.camera("CAM_FRONT")
    ahead = np.asarray(cam.translation) + np.array([20.0, 0.0, 0.0])
    uv, depth = project(ego_to_image(cam.intrinsics(), cam.to_base()), ahead[None])
    np.testing.assert_allclose(uv[0], [cam.cx, cam.cy], atol=1e-6)
    assert depth[0] == pytest.approx(20.0)


def test_point_left_of_car_seen_by_front_left_only(rig: RigSpec) -> None:
    left = np.array([6.0, 6.0, 1.0])
    assert in_image(rig, "CAM_FRONT_LEFT", left)
    assert not in_image(rig, "CAM_FRONT_RIGHT", left)
    assert in_image(rig, "CAM_BACK", np.array([-15.0, 0.5, 1.0]))
    assert not in_image(rig, "CAM_FRONT", np.array([-15.0, 0.5, 1.0]))


def test_every_direction_is_covered(rig: RigSpec) -> None:
    for bearing in np.radians(np.arange(0, 360, 5)):
        point = np.array([15.0 * math.cos(bearing), 15.0 * math.sin(bearing), 1.0])
        assert any(in_image(rig, ch, point) for ch in CAMERA_CHANNELS), math.degrees(bearing)


def test_capture_offsets_follow_clockwise_sweep(rig: RigSpec) -> None:
    for cam in rig.cameras:
        clockwise = (-cam.yaw_deg) % 360.0
        assert cam.capture_offset_ms == pytest.approx(50.0 * clockwise / 360.0, abs=1.0)
    assert rig.camera("CAM_BACK").capture_offset_ns == 25_000_000


def test_lidar_x_points_right(rig: RigSpec) -> None:
    lidar_to_base = rig.lidar.to_base()
    np.testing.assert_allclose(lidar_to_base.apply(np.array([1.0, 0.0, 0.0])), [0.94, -1.0, 1.84], atol=1e-12)


def test_camera_lookup_error(rig: RigSpec) -> None:
    with pytest.raises(KeyError, match="CAM_TOP"):
        rig.camera("CAM_TOP")


def test_duplicated_channel_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["cameras"][1]["channel"] = "CAM_FRONT"
    with pytest.raises(ConfigError, match=r"rig\.yaml: duplicated camera channel.*CAM_FRONT"):
        parse(RigSpec, data, "rig.yaml")


def test_rig_field_errors(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["cameras"][2]["fx"] = -3.0
    with pytest.raises(ConfigError) as info:
        parse(RigSpec, data, "rig.yaml")
    assert str(info.value) == "rig.yaml: cameras[2].fx: expected a positive number, got -3.0"
    data = copy.deepcopy(raw)
    data["cameras"] = data["cameras"][::-1]
    with pytest.raises(ConfigError, match="in this order"):
        parse(RigSpec, data, "rig.yaml")
