"""The tracker node's settings: the pipeline's (:class:`PipelineSettings`) and the node's own
(topics, lifecycle, outputs), each declared once with its default, description and range, and
declared as a ROS parameter from that declaration (:mod:`syncl_ros.ros.parameters`).

Defaults match the bags written by `syncl convert` (the nuScenes layout), so
`ros2 run syncl_ros tracker_node` works against `ros2 bag play` / `syncl play`
of such a bag without a parameter file.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node

from syncl_ros.config import setting
from syncl_ros.pipeline.settings import PipelineSettings
from syncl_ros.rig import CAMERA_CHANNELS
from syncl_ros.ros import parameters


@dataclass(frozen=True)
class NodeSettings(PipelineSettings):
    build_only: bool = setting(False, "build the TensorRT engine (or export) and exit")
    autostart: bool = setting(
        True,
        "configure and activate at start (a failed configure leaves the node unconfigured, to be "
        "configured again through its lifecycle services); false: wait for a lifecycle manager",
    )
    image_topics: list[str] = setting(
        doc="one per camera", factory=lambda: [f"/{c}/image_rect_compressed" for c in CAMERA_CHANNELS]
    )
    camera_info_topics: list[str] = setting(
        doc="one per camera", factory=lambda: [f"/{c}/camera_info" for c in CAMERA_CHANNELS]
    )
    odom_topic: str = setting("/odom", "odometry topic when ego_source is odom")
    output_frame: str = setting("base_link", "frame of the published tracks: base_frame or world_frame")
    diagnostics_period_s: float = setting(
        1.0, "period of /diagnostics (a change of level is published at once)", min=0.1, max=60.0
    )
    overlay: bool = setting(
        False,
        "publish ~/overlay (sensor_msgs/CompressedImage, JPEG): the six network input images with the "
        "tracks' boxes projected, laid out as the rig sits; a debug view that costs CPU per frame",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.camera_channels)
        if len(self.image_topics) != n or len(self.camera_info_topics) != n:
            raise ValueError(
                f"image_topics ({len(self.image_topics)}) and camera_info_topics "
                f"({len(self.camera_info_topics)}) need one entry per camera ({n})"
            )
        if self.output_frame not in (self.base_frame, self.world_frame):
            raise ValueError(
                f"output_frame must be base_frame ({self.base_frame}) or world_frame "
                f"({self.world_frame}), got {self.output_frame!r}"
            )


def declare_and_read(node: Node) -> NodeSettings:
    """Declare every parameter (read-only: they take effect at configure) and read them."""
    parameters.declare(node, NodeSettings)
    return parameters.read(node, NodeSettings)
