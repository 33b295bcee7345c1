"""A rig frame -> network inputs: every camera checked against its calibration, and a frame that
lacks some cameras still usable (those cameras blank and masked) while enough remain."""

from __future__ import annotations

import numpy as np
import pytest

from syncl_ros.geometry import Transform
from syncl_ros.model.config import InputConfig
from syncl_ros.pipeline.frame_inputs import CameraImage, CameraIntrinsics, FrameError, FrameInputs, assemble
from syncl_ros.rig import CAMERA_CHANNELS

CFG = InputConfig(height=64, width=160)
T0 = 1_700_000_000 * 1_000_000_000
SIZE = (1600, 900)
K = np.array([[1266.0, 0.0, 816.0], [0.0, 1266.0, 491.0], [0.0, 0.0, 1.0]])


def calibration() -> tuple[dict[str, CameraIntrinsics], dict[str, Transform]]:
    intrinsics = {c: CameraIntrinsics(K, *SIZE, frame_id=c.lower()) for c in CAMERA_CHANNELS}
    extrinsics = {c: Transform.from_xy_yaw(1.0, 0.0, i * 1.0, z=1.5) for i, c in enumerate(CAMERA_CHANNELS)}
    return intrinsics, extrinsics


def image(value: float, problem: tuple[str, str] | None = None) -> CameraImage:
    return CameraImage(np.full((3, CFG.height, CFG.width), value, np.float32), *SIZE, problem=problem)


def build(
    images: dict[str, CameraImage | None], min_cameras: int | None, drop_extrinsic: str = ""
) -> FrameInputs:
    intrinsics, extrinsics = calibration()
    extrinsics.pop(drop_extrinsic, None)
    stamps = {c: T0 for c, im in images.items() if im is not None}
    return assemble(
        CAMERA_CHANNELS,
        images,
        stamps,
        T0,
        intrinsics,
        extrinsics,
        lambda _: Transform.identity(),
        CFG,
        min_cameras,
    )


def full() -> dict[str, CameraImage | None]:
    return {c: image(i + 1.0) for i, c in enumerate(CAMERA_CHANNELS)}


def test_a_complete_frame_uses_every_camera() -> None:
    inputs = build(full(), None)
    assert inputs.used.all() and inputs.missing == {}


def test_cameras_that_fail_are_left_out_while_enough_remain() -> None:
    images = full()
    images["CAM_BACK"] = None  # the synchronizer had no image
    images["CAM_FRONT_LEFT"] = image(3.0, ("decode_error", "not a JPEG"))
    whole = build(full(), None)
    inputs = build(images, 3, drop_extrinsic="CAM_BACK_RIGHT")
    left_out = {"CAM_BACK": "missing", "CAM_FRONT_LEFT": "decode_error", "CAM_BACK_RIGHT": "no_extrinsics"}
    assert {c: e.reason for c, e in inputs.missing.items()} == left_out
    used = [c not in left_out for c in CAMERA_CHANNELS]
    assert inputs.used.tolist() == used
    keep = np.array(used)
    assert inputs.images is not None and whole.images is not None
    # The cameras kept are exactly as in the complete frame; the others are blank and finite.
    np.testing.assert_array_equal(inputs.images[keep], whole.images[keep])
    np.testing.assert_array_equal(inputs.img2lidar[keep], whole.img2lidar[keep])
    assert not inputs.images[~keep].any() and np.isfinite(inputs.img2lidar).all()


def test_too_few_cameras_drop_the_frame_naming_them() -> None:
    images = full()
    for c in CAMERA_CHANNELS[2:]:
        images[c] = None
    with pytest.raises(FrameError) as err:
        build(images, 3)
    assert err.value.reason == "missing" and err.value.channel == CAMERA_CHANNELS[2]
    assert "also without" in str(err.value) and CAMERA_CHANNELS[5] in str(err.value)
    assert build(images, 2).used.sum() == 2


def test_without_degraded_operation_any_failing_camera_drops_the_frame() -> None:
    images = full()
    images["CAM_BACK"] = image(1.0, ("size_mismatch", "image is 8x65500"))
    with pytest.raises(FrameError) as err:
        build(images, None)
    assert (err.value.reason, err.value.channel) == ("size_mismatch", "CAM_BACK")
