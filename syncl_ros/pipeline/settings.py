"""What the live pipeline is set up with: the model and backend, the rig and its synchronization,
ego poses, health limits and the tracker settings that replace the model's. The node's
parameters (:mod:`syncl_ros.ros.settings`) add the ROS side: topics, QoS-free switches, outputs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineSettings:
    model: str
    backend: str
    fallback: list[str]
    device: str
    precision: str
    engine_cache_dir: str
    image_transport: str
    camera_channels: list[str]
    anchor_camera: str
    max_spread_ms: float
    sync_center_ms: float
    max_wait_ms: float
    ego_source: str
    world_frame: str
    base_frame: str
    process_period_s: float
    tracker: str
    birth_score: float
    update_score: float
    duplicate_distance_m: float
    output_score: float
    max_missed: int
    greedy_score: float
    greedy_max_age: int
    measured_velocity: float
    camera_timeout_s: float
    frame_timeout_s: float
    min_cameras: int
    min_frame_cameras: int
    tf_wait_ms: float
    max_ego_gap_s: float
    latency_log: str


# Setting -> model tracker setting it overrides when set (>= 0 or non-empty).
TRACKER_KEYS = {
    "tracker": "method",
    "birth_score": "birth_score",
    "update_score": "update_score",
    "duplicate_distance_m": "duplicate_distance_m",
    "output_score": "output_score",
    "max_missed": "max_missed",
    "greedy_score": "greedy.score",
    "greedy_max_age": "greedy.max_age",
    "measured_velocity": "measured_velocity",
}


def tracker_overrides(settings: PipelineSettings) -> list[str]:
    """The tracker settings that are set, as "tracker.KEY=VALUE" overrides of the model's."""
    out = []
    for name, key in TRACKER_KEYS.items():
        value = getattr(settings, name)
        if value != "" and not (isinstance(value, int | float) and value < 0):
            out.append(f"tracker.{key}={value}")
    return out
