"""Rig health for /diagnostics: outages go WARN or ERROR within the timeouts, naming the cameras,
and back to OK; rates are counted over a window before now, so a silent camera's decays to 0."""

from __future__ import annotations

import pytest

from syncl_ros.pipeline.health import ERROR, OK, WARN, HealthLimits, RigHealth
from syncl_ros.rig import CAMERA_CHANNELS

MS = 1_000_000
S = 1_000 * MS
PERIOD = 83 * MS  # 12 Hz cameras
LIMITS = HealthLimits(camera_timeout_ns=1 * S, frame_timeout_ns=1 * S, min_cameras=1)


class Rig:
    """Drives a RigHealth on a simulated clock: 12 Hz images, a processed frame every 0.5 s."""

    def __init__(self, limits: HealthLimits = LIMITS) -> None:
        self.health = RigHealth(CAMERA_CHANNELS, limits)
        self.now = 0
        self.silent: set[str] = set()
        self.blamed: dict[str, str] = {}  # camera -> reason its every image is dropped for

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds * S / PERIOD)):
            self.now += PERIOD
            for channel in CAMERA_CHANNELS:
                if channel not in self.silent:
                    self.health.image(channel, self.now)
                if channel in self.blamed:
                    self.health.blame(channel, self.blamed[channel], self.now)
            # frames need every camera; one is processed per 0.5 s
            if not self.silent and not self.blamed and self.now % (500 * MS) < PERIOD:
                self.health.processed(self.now)

    def input(self) -> tuple[int, str]:
        return self.health.input_status(self.now)

    def pipeline(self) -> tuple[int, str]:
        return self.health.pipeline_status(self.now)

    def rates(self) -> dict[str, float]:
        return {c: v["rate_hz"] for c, v in self.health.camera_values(self.now).items()}


def test_nothing_received_yet_is_a_warning_not_an_outage() -> None:
    rig = Rig()
    rig.now = 10 * S
    assert rig.input() == (WARN, "no image received yet")
    assert rig.pipeline()[0] == WARN


def test_a_healthy_rig_is_ok_at_its_rate() -> None:
    rig = Rig()
    rig.run(3.0)
    assert rig.input() == (OK, "6 cameras delivering")
    assert rig.pipeline() == (OK, "processing")
    assert all(r == pytest.approx(12.0, abs=0.6) for r in rig.rates().values()), rig.rates()


def test_a_silent_camera_warns_within_the_timeout_names_it_and_recovers() -> None:
    rig = Rig()
    rig.run(3.0)
    rig.silent = {"CAM_BACK"}
    rig.run(0.9)
    assert rig.input()[0] == OK
    rig.run(0.2)
    level, message = rig.input()
    assert level == WARN and message.startswith("CAM_BACK silent for 1.1 s"), message
    assert rig.pipeline()[0] == ERROR  # no frame without CAM_BACK: none for over 1 s
    assert rig.health.camera_values(rig.now)["CAM_BACK"]["state"].startswith("silent")
    rig.run(1.0)
    rates = rig.rates()
    assert rates["CAM_BACK"] == 0.0 and rates["CAM_FRONT"] == pytest.approx(12.0, abs=0.6)
    rig.silent = set()
    rig.run(0.6)
    assert rig.input()[0] == OK and rig.pipeline()[0] == OK


def test_a_camera_whose_images_are_all_dropped_warns_and_recovers() -> None:
    rig = Rig()
    rig.run(2.0)
    rig.blamed = {"CAM_FRONT_LEFT": "size_mismatch"}
    rig.run(0.9)
    assert rig.input()[0] == OK
    rig.run(0.3)
    level, message = rig.input()
    assert level == WARN and message.startswith("CAM_FRONT_LEFT images dropped for"), message
    assert "(size_mismatch)" in message and "CAM_FRONT " not in message
    level, message = rig.pipeline()
    assert level == ERROR and message.startswith("no frame processed for 1."), message
    rig.blamed = {}
    rig.run(0.6)
    assert rig.input()[0] == OK and rig.pipeline()[0] == OK


def test_occasional_drops_while_frames_go_through_stay_ok() -> None:
    rig = Rig()
    for _ in range(6):
        rig.run(0.5)
        rig.health.blame("CAM_BACK", "out_of_order", rig.now)
    assert rig.input()[0] == OK


def test_fewer_cameras_than_the_minimum_is_an_error_naming_them() -> None:
    rig = Rig(HealthLimits(camera_timeout_ns=1 * S, frame_timeout_ns=1 * S, min_cameras=5))
    rig.run(2.0)
    rig.silent = {"CAM_BACK", "CAM_FRONT"}
    rig.run(1.2)
    level, message = rig.input()
    assert level == ERROR and message.startswith("4 of 6 cameras delivering"), message
    assert "CAM_BACK silent" in message and "CAM_FRONT silent" in message


def test_all_cameras_silent_is_an_error_with_the_default_minimum() -> None:
    rig = Rig()
    rig.run(2.0)
    rig.silent = set(CAMERA_CHANNELS)
    rig.now += 1_100 * MS
    assert rig.input()[0] == ERROR and rig.pipeline()[0] == ERROR
    assert all(r < 12.0 for r in rig.rates().values())
    rig.now += 1 * S
    assert set(rig.rates().values()) == {0.0}


def test_a_camera_never_heard_is_reported_from_the_first_image_on() -> None:
    rig = Rig()
    rig.silent = {"CAM_BACK_LEFT"}
    rig.run(1.2)
    level, message = rig.input()
    assert level == WARN and message.startswith("CAM_BACK_LEFT no image for"), message
    assert rig.health.camera_values(rig.now)["CAM_BACK_LEFT"]["last_image_s"] is None


def test_a_frame_lost_for_no_camera_says_why() -> None:
    rig = Rig()
    rig.run(1.0)
    rig.health.frame_lost("no_ego_pose")
    rig.now += 1_200 * MS
    level, message = rig.pipeline()
    assert level == ERROR and message.endswith("(last frame lost: no_ego_pose)"), message
