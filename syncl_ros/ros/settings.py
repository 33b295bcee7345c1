"""The tracker node's parameters: declared with descriptors and ranges, read into one typed object.

Defaults match the bags written by `syncl convert` (the nuScenes layout), so
`ros2 run syncl_ros tracker_node` works against `ros2 bag play` / `syncl play`
of such a bag without a parameter file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from syncl_ros.pipeline.settings import PipelineSettings
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.tracking.config import TRACKING_METHODS

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class Param:
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None


PARAMS: dict[str, Param] = {
    "model": Param("", "checkpoint (.pt) or export folder; empty: the shipped default model"),
    "backend": Param("auto", "auto | tensorrt | onnxruntime | torch", BACKENDS),
    "fallback": Param(["onnxruntime", "torch"], "backends tried in order when the chosen one cannot start"),
    "device": Param("auto", "auto (cuda when available) | cpu | cuda | cuda:N"),
    "precision": Param("fp16", "fp16 | fp32 on GPUs (CPU backends always run fp32)", ("fp16", "fp32")),
    "engine_cache_dir": Param("", "TensorRT engine / ONNX export cache; empty: ~/.cache/syncl_ros"),
    "build_only": Param(False, "build the TensorRT engine (or export) and exit"),
    "autostart": Param(
        True,
        "configure and activate at start (a failed configure leaves the node unconfigured, to be "
        "configured again through its lifecycle services); false: wait for a lifecycle manager",
    ),
    "image_transport": Param(
        "compressed", "compressed (sensor_msgs/CompressedImage) | raw (Image)", ("compressed", "raw")
    ),
    "camera_channels": Param(list(CAMERA_CHANNELS), "camera names in the model's camera order"),
    "image_topics": Param([f"/{c}/image_rect_compressed" for c in CAMERA_CHANNELS], "one per camera"),
    "camera_info_topics": Param([f"/{c}/camera_info" for c in CAMERA_CHANNELS], "one per camera"),
    "anchor_camera": Param("CAM_FRONT", "the camera whose images trigger a frame"),
    "max_spread_ms": Param(100.0, "largest stamp spread accepted within one rig frame", lo=1.0, hi=1000.0),
    "sync_center_ms": Param(
        25.0,
        "where the other cameras fire relative to the anchor, on average "
        "(nuScenes: CAM_FRONT first, the rest over ~50 ms)",
        lo=-500.0,
        hi=500.0,
    ),
    "max_wait_ms": Param(150.0, "how long to wait for late images of a frame", lo=0.0, hi=2000.0),
    "ego_source": Param("tf", "tf (world->base_link from /tf) | odom (odometry topic)", ("tf", "odom")),
    "odom_topic": Param("/odom", "odometry topic when ego_source is odom"),
    "world_frame": Param("map", "world frame of the ego poses"),
    "base_frame": Param("base_link", "the ego frame (the model frame)"),
    "output_frame": Param("base_link", "frame of the published tracks: base_frame or world_frame"),
    "process_period_s": Param(
        -1.0,
        "seconds between processed frames; -1: the model's trained interval; 0: every synchronized frame",
        lo=-1.0,
        hi=10.0,
    ),
    "tracker": Param(
        "",
        "queries (the network's track queries) | greedy (its detections linked by center distance); "
        "empty: the model's tracker.method",
        ("", *TRACKING_METHODS),
    ),
    "birth_score": Param(-1.0, "query tracker birth threshold; -1: the model's", lo=-1.0, hi=1.0),
    "update_score": Param(-1.0, "query tracker update threshold; -1: the model's", lo=-1.0, hi=1.0),
    "duplicate_distance_m": Param(
        -1.0,
        "query tracker: a confident detection closer than this (m, bird's-eye view) to a track or a "
        "better new one gives no birth; 0: off; -1: the model's",
        lo=-1.0,
        hi=20.0,
    ),
    "output_score": Param(-1.0, "query tracker output threshold; -1: the model's", lo=-1.0, hi=1.0),
    "max_missed": Param(-1, "frames a query track may coast; -1: the model's", lo=-1, hi=100),
    "greedy_score": Param(-1.0, "greedy tracker detection threshold; -1: the model's", lo=-1.0, hi=1.0),
    "greedy_max_age": Param(-1, "frames a greedy track may go unmatched; -1: the model's", lo=-1, hi=100),
    "measured_velocity": Param(
        -1.0,
        "share of a track's velocity measured from its motion (0: the network's); -1: the model's",
        lo=-1.0,
        hi=1.0,
    ),
    "diagnostics_period_s": Param(
        1.0, "period of /diagnostics (a change of level is published at once)", lo=0.1, hi=60.0
    ),
    "camera_timeout_s": Param(
        1.0, "diagnostics WARN for a camera silent, or all its images dropped, this long", lo=0.05, hi=600.0
    ),
    "frame_timeout_s": Param(
        1.0,
        "diagnostics ERROR when no frame was processed this long (at least two processing periods)",
        lo=0.05,
        hi=600.0,
    ),
    "min_cameras": Param(1, "diagnostics ERROR when fewer cameras deliver; 0: never", lo=0, hi=64),
    "min_frame_cameras": Param(
        1,
        "fewest usable cameras a frame is processed with: a camera that fails a frame (late, "
        "undecodable, wrong size, no calibration) is masked out of the network, a silent anchor "
        "camera's frames are taken over by the next camera; the number of cameras: every one required",
        lo=1,
        hi=64,
    ),
    "tf_wait_ms": Param(100.0, "how long a frame waits for its transforms and CameraInfo", lo=0.0, hi=5000.0),
    "max_ego_gap_s": Param(
        0.3,
        "a frame up to this far past the newest ego pose continues the last ego motion (constant "
        "velocity and yaw rate); further, it is dropped, and the tracker starts over when poses "
        "return; 0: never extrapolate",
        lo=0.0,
        hi=5.0,
    ),
    "overlay": Param(
        False,
        "publish ~/overlay (sensor_msgs/CompressedImage, JPEG): the six network input images with the "
        "tracks' boxes projected, laid out as the rig sits; a debug view that costs CPU per frame",
    ),
    "latency_log": Param(
        "", "append each processed frame's stage latencies (ms) as one JSON line to this file; empty: off"
    ),
}


@dataclass(frozen=True)
class NodeSettings(PipelineSettings):
    """The pipeline's settings and the node's own (topics, lifecycle, outputs)."""

    build_only: bool
    autostart: bool
    image_topics: list[str]
    camera_info_topics: list[str]
    odom_topic: str
    output_frame: str
    diagnostics_period_s: float
    overlay: bool

    def check(self) -> None:
        n = len(self.camera_channels)
        if len(self.image_topics) != n or len(self.camera_info_topics) != n:
            raise ValueError(
                f"image_topics ({len(self.image_topics)}) and camera_info_topics "
                f"({len(self.camera_info_topics)}) need one entry per camera ({n})"
            )
        for name in ("min_cameras", "min_frame_cameras"):
            if getattr(self, name) > n:
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds the number of cameras ({n})")
        if self.anchor_camera not in self.camera_channels:
            raise ValueError(f"anchor_camera {self.anchor_camera!r} is not in camera_channels")
        if self.output_frame not in (self.base_frame, self.world_frame):
            raise ValueError(
                f"output_frame must be base_frame ({self.base_frame}) or world_frame "
                f"({self.world_frame}), got {self.output_frame!r}"
            )
        for name in ("backend", "precision", "image_transport", "ego_source", "tracker"):
            choices = PARAMS[name].choices
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")


def _descriptor(name: str, p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=p.doc, read_only=True)
    if p.lo is not None and p.hi is not None:
        if isinstance(p.default, int) and not isinstance(p.default, bool):
            d.integer_range = [IntegerRange(from_value=int(p.lo), to_value=int(p.hi), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=p.lo, to_value=p.hi, step=0.0)]
    return d


def declare_and_read(node: Node) -> NodeSettings:
    """Declare every parameter (read-only: they take effect at configure) and read them."""
    for name, p in PARAMS.items():
        node.declare_parameter(name, p.default, _descriptor(name, p))
    values = {f.name: node.get_parameter(f.name).value for f in fields(NodeSettings)}
    values = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    settings = NodeSettings(**values)
    settings.check()
    return settings
