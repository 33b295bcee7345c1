"""Capture schedule of a scene: when each camera exposes, when the lidar key frames are, and how they pair.

The rig is triggered at the camera rate; each camera exposes
``capture_offset_ms`` after the trigger (it fires as the spinning lidar
passes it). Every ``camera_rate / keyframe_rate``-th trigger starts an
annotated sample, stamped at the middle of that lidar turn. Each camera's
key frame for a sample is its exposure closest to the sample timestamp.
All times are integer nanoseconds on a microsecond grid, since the dataset
tables store microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from syncl_ros.rig import RigSpec

LIDAR_TURN_NS = 50_000_000  # a 20 Hz lidar turn; the sample is stamped mid-turn


def to_us_grid(t_ns: int | float) -> int:
    """Nearest whole microsecond, in nanoseconds."""
    return round(t_ns / 1000.0) * 1000


@dataclass(frozen=True)
class Timeline:
    """Schedule of one scene."""

    camera_times: NDArray[np.int64]  # (C, F) int64 ns: exposure of frame f of camera c
    sample_times: NDArray[np.int64]  # (S,) int64 ns: the key frames (lidar)
    key_frame: NDArray[np.int64]  # (C, S) frame index of each camera's key frame of each sample
    sample_of: NDArray[np.int64]  # (C, F) sample a frame belongs to (the next key frame at or after it)

    @property
    def num_samples(self) -> int:
        return len(self.sample_times)

    @property
    def num_frames(self) -> int:
        return int(self.camera_times.shape[1])

    def is_key(self, cam: int, frame: int) -> bool:
        return bool(np.any(self.key_frame[cam] == frame))


def frames_per_sample(rig: RigSpec) -> int:
    ratio = rig.camera_rate_hz / rig.keyframe_rate_hz
    if abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(
            f"camera rate {rig.camera_rate_hz} Hz is not a multiple of {rig.keyframe_rate_hz} Hz"
        )
    return round(ratio)


def plan(rig: RigSpec, start_ns: int, num_samples: int) -> Timeline:
    """Schedule ``num_samples`` key frames starting with a trigger at ``start_ns``."""
    per_sample = frames_per_sample(rig)
    n_frames = num_samples * per_sample
    triggers = [start_ns + to_us_grid(f * 1e9 / rig.camera_rate_hz) for f in range(n_frames)]
    cams = np.array(
        [[to_us_grid(t + cam.capture_offset_ns) for t in triggers] for cam in rig.cameras], dtype=np.int64
    )
    samples = np.array(
        [to_us_grid(triggers[j * per_sample] + LIDAR_TURN_NS // 2) for j in range(num_samples)]
    )
    key = np.argmin(np.abs(cams[:, :, None] - samples[None, None, :]), axis=1)  # (C, S)
    # Frames up to a sample's timestamp belong to it, later ones to the next sample.
    sample_of = np.minimum(np.searchsorted(samples, cams, side="left"), num_samples - 1)
    for c in range(len(rig.cameras)):
        sample_of[c, key[c]] = np.arange(num_samples)
    return Timeline(cams, samples.astype(np.int64), key, sample_of)
