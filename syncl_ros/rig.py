"""Camera rig description: intrinsics, mounting poses and capture timing."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from syncl_ros.config import load, resolve
from syncl_ros.geometry import Transform, optical_to_body, yaw_quaternion

# nuScenes channel order; model inputs and datasets index cameras by it.
CAMERA_CHANNELS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)

_POSITIVE = {"gt": 0}


def _meta(doc: str, **bounds: float) -> dict[str, object]:
    return {"doc": doc, **bounds}


@dataclass
class CameraSpec:
    """One pinhole camera; pose of its optical frame (z forward, x right, y down) in the base frame."""

    channel: str = field(metadata=_meta("nuScenes channel name, e.g. CAM_FRONT"))
    frame_id: str = field(metadata=_meta("tf frame of the optical frame"))
    width: int = field(metadata=_meta("image width in pixels", **_POSITIVE))
    height: int = field(metadata=_meta("image height in pixels", **_POSITIVE))
    fx: float = field(metadata=_meta("focal length in pixels along u", **_POSITIVE))
    fy: float = field(metadata=_meta("focal length in pixels along v", **_POSITIVE))
    cx: float = field(metadata=_meta("principal point u in pixels"))
    cy: float = field(metadata=_meta("principal point v in pixels"))
    translation: tuple[float, float, float] = field(metadata=_meta("optical center in the base frame (m)"))
    yaw_deg: float = field(metadata=_meta("viewing direction, left positive", min=-360, max=360))
    pitch_deg: float = field(default=0.0, metadata=_meta("tilt, down positive", min=-90, max=90))
    roll_deg: float = field(default=0.0, metadata=_meta("roll about the view axis", min=-180, max=180))
    capture_offset_ms: float = field(
        default=0.0, metadata=_meta("exposure delay after the rig trigger", min=0, max=1000)
    )

    def __post_init__(self) -> None:
        if not self.frame_id:
            raise ValueError(f"{self.channel}: frame_id must not be empty")

    def intrinsics(self) -> NDArray[np.float64]:
        """3x3 pinhole matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_base(self) -> Transform:
        """Optical frame -> base frame."""
        rotation = optical_to_body(
            math.radians(self.yaw_deg), math.radians(self.pitch_deg), math.radians(self.roll_deg)
        )
        return Transform(rotation, np.asarray(self.translation))

    @property
    def capture_offset_ns(self) -> int:
        return round(self.capture_offset_ms * 1e6)


@dataclass
class SensorSpec:
    """A body-frame sensor (x forward like base_link, turned by yaw), e.g. LIDAR_TOP."""

    channel: str = field(metadata=_meta("nuScenes channel name, e.g. LIDAR_TOP"))
    frame_id: str = field(metadata=_meta("tf frame of the sensor"))
    translation: tuple[float, float, float] = field(metadata=_meta("origin in the base frame (m)"))
    yaw_deg: float = field(default=0.0, metadata=_meta("heading of the sensor x axis", min=-360, max=360))

    def to_base(self) -> Transform:
        """Sensor frame -> base frame."""
        return Transform(yaw_quaternion(math.radians(self.yaw_deg)), np.asarray(self.translation))


@dataclass(kw_only=True)
class RigSpec:
    """The six-camera rig plus the lidar that defines the key-frame clock."""

    name: str = field(metadata=_meta("rig name"))
    base_frame: str = field(default="base_link", metadata=_meta("ego body frame (REP-103)"))
    camera_rate_hz: float = field(metadata=_meta("camera frame rate", **_POSITIVE))
    keyframe_rate_hz: float = field(metadata=_meta("annotated key-frame rate", **_POSITIVE))
    cameras: list[CameraSpec] = field(metadata=_meta("cameras in nuScenes channel order"))
    lidar: SensorSpec = field(metadata=_meta("top lidar"))

    def __post_init__(self) -> None:
        channels = tuple(c.channel for c in self.cameras)
        duplicated = sorted({c for c in channels if channels.count(c) > 1})
        if duplicated:
            raise ValueError(f"duplicated camera channel(s): {', '.join(duplicated)}")
        if channels != CAMERA_CHANNELS:
            expected = ", ".join(CAMERA_CHANNELS)
            raise ValueError(f"cameras must be exactly {expected} in this order, got {channels}")
        frames = [c.frame_id for c in self.cameras] + [self.lidar.frame_id, self.base_frame]
        if len(set(frames)) != len(frames):
            raise ValueError(f"frame ids must be unique, got {frames}")
        if self.keyframe_rate_hz > self.camera_rate_hz:
            raise ValueError(
                f"keyframe_rate_hz ({self.keyframe_rate_hz}) exceeds camera_rate_hz ({self.camera_rate_hz})"
            )
        late = [c.channel for c in self.cameras if c.capture_offset_ns >= self.camera_period_ns]
        if late:
            raise ValueError(f"capture_offset_ms of {', '.join(late)} is not shorter than one camera period")

    @property
    def camera_period_ns(self) -> int:
        return round(1e9 / self.camera_rate_hz)

    @property
    def keyframe_period_ns(self) -> int:
        return round(1e9 / self.keyframe_rate_hz)

    def camera(self, channel: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.channel == channel:
                return cam
        raise KeyError(f"no camera {channel!r} in rig {self.name!r}; have {', '.join(CAMERA_CHANNELS)}")


def load_rig(name_or_path: str | Path = "rig_nuscenes") -> RigSpec:
    """Rig from a shipped config name (e.g. "rig_nuscenes") or a YAML path."""
    return load(RigSpec, resolve(name_or_path))
