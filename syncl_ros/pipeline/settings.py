"""What the live pipeline is set up with: the model and backend, the rig and its synchronization,
ego poses, health limits, and the tracker settings that replace the model's.

Each setting is declared once, here (its default, description and range): YAML and the typed
parser read it, and the node declares one ROS parameter per setting from it
(:mod:`syncl_ros.ros.parameters`), adding its own (:mod:`syncl_ros.ros.settings`). Defaults
match the bags written by `syncl convert` (the nuScenes layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from syncl_ros.config import parse, setting
from syncl_ros.experiment import set_dotted
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.tracking.config import TrackerConfig


@dataclass(frozen=True)
class PipelineSettings:
    model: str = setting("", "checkpoint (.pt) or export folder; empty: the shipped default model")
    backend: Literal["auto", "tensorrt", "onnxruntime", "torch"] = setting(
        "auto", "auto: tensorrt on a GPU, else onnxruntime; see fallback"
    )
    fallback: list[Literal["tensorrt", "onnxruntime", "torch"]] = setting(
        doc="backends tried in order when the chosen one cannot start",
        factory=lambda: ["onnxruntime", "torch"],
    )
    device: str = setting("auto", "auto (cuda when available) | cpu | cuda | cuda:N")
    precision: Literal["fp16", "fp32"] = setting("fp16", "on GPUs (CPU backends always run fp32)")
    engine_cache_dir: str = setting("", "TensorRT engine / ONNX export cache; empty: ~/.cache/syncl_ros")
    image_transport: Literal["compressed", "raw"] = setting(
        "compressed", "compressed (sensor_msgs/CompressedImage) | raw (Image)"
    )
    camera_channels: list[str] = setting(
        doc="camera names in the model's camera order", factory=lambda: list(CAMERA_CHANNELS)
    )
    anchor_camera: str = setting("CAM_FRONT", "the camera whose images trigger a frame")
    max_spread_ms: float = setting(
        100.0, "largest stamp spread accepted within one rig frame", min=1.0, max=1000.0
    )
    sync_center_ms: float = setting(
        25.0,
        "where the other cameras fire relative to the anchor, on average "
        "(nuScenes: CAM_FRONT first, the rest over ~50 ms)",
        min=-500.0,
        max=500.0,
    )
    max_wait_ms: float = setting(150.0, "how long to wait for late images of a frame", min=0.0, max=2000.0)
    queue_frames: int = setting(
        1,
        "frames that may wait while one is processed; when full the oldest is dropped "
        "(1: always the newest, the lowest latency; more: a replay processed without drops)",
        min=1,
        max=64,
    )
    ego_source: Literal["tf", "odom"] = setting(
        "tf", "tf (world -> base_link from /tf) | odom (an odometry topic)"
    )
    world_frame: str = setting("map", "world frame of the ego poses")
    base_frame: str = setting("base_link", "the ego frame (the model frame)")
    process_period_s: float | None = setting(
        None,
        "seconds between processed frames; unset: the model's trained interval; 0: every synchronized frame",
        min=0.0,
        max=10.0,
    )
    tracker: tuple[str, ...] = setting(
        (),
        "the model's tracker settings replaced, as by `syncl track --set tracker.KEY=VALUE`",
        overrides=TrackerConfig,
    )
    camera_timeout_s: float = setting(
        1.0, "diagnostics WARN for a camera silent, or all its images dropped, this long", min=0.05, max=600.0
    )
    frame_timeout_s: float = setting(
        1.0,
        "diagnostics ERROR when no frame was processed this long (at least two processing periods)",
        min=0.05,
        max=600.0,
    )
    min_cameras: int = setting(1, "diagnostics ERROR when fewer cameras deliver; 0: never", min=0, max=64)
    min_frame_cameras: int = setting(
        1,
        "fewest usable cameras a frame is processed with: a camera that fails a frame (late, "
        "undecodable, wrong size, no calibration) is masked out of the network, a silent anchor "
        "camera's frames are taken over by the next camera; the number of cameras: every one required",
        min=1,
        max=64,
    )
    tf_wait_ms: float = setting(
        100.0, "how long a frame waits for its transforms and CameraInfo", min=0.0, max=5000.0
    )
    max_ego_gap_s: float = setting(
        0.3,
        "a frame up to this far past the newest ego pose continues the last ego motion (constant "
        "velocity and yaw rate); further, it is dropped, and the tracker starts over when poses "
        "return; 0: never extrapolate",
        min=0.0,
        max=5.0,
    )
    latency_log: str = setting(
        "", "append each processed frame's stage latencies (ms) as one JSON line to this file; empty: off"
    )

    def __post_init__(self) -> None:
        n = len(self.camera_channels)
        for name in ("min_cameras", "min_frame_cameras"):
            if getattr(self, name) > n:
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds the number of cameras ({n})")
        if self.anchor_camera not in self.camera_channels:
            raise ValueError(f"anchor_camera {self.anchor_camera!r} is not in camera_channels")
        check_tracker_overrides(self.tracker)


def check_tracker_overrides(overrides: tuple[str, ...]) -> None:
    """Each "tracker.KEY=VALUE" names a tracker setting and holds a value it takes (ConfigError,
    a ValueError, naming the key otherwise); whether they fit the model is for the model to say."""
    data: dict[str, Any] = {}
    for item in overrides:
        if not item.startswith("tracker."):
            raise ValueError(f"tracker: {item!r} is not a tracker.KEY=VALUE setting")
        set_dotted(data, item)
    parse(TrackerConfig, data.get("tracker", {}), "tracker")
