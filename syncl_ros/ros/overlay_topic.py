"""The node's debug image ~/overlay: the six network inputs with the tracks' boxes projected,
laid out as the rig sits, JPEG-compressed (sensor_msgs/CompressedImage), at the network's
input resolution (e.g. 6 x 352x128 for the tiny model). Off by default (parameter overlay)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
from sensor_msgs.msg import CompressedImage

from syncl_ros.model.config import InputConfig
from syncl_ros.pipeline.frame_inputs import FrameInputs
from syncl_ros.ros.messages import make_header
from syncl_ros.tracking.interface import Track
from syncl_ros.viz.overlay import network_view, track_box

JPEG_QUALITY = 80


def overlay_message(
    inputs: FrameInputs, tracks: Sequence[Track], channels: Sequence[str], cfg: InputConfig, frame_id: str
) -> CompressedImage:
    """The mosaic of one processed frame, stamped with its anchor stamp."""
    if inputs.lidar2img is None or inputs.images is None:
        raise ValueError("the frame's inputs carry no images or camera projections")
    boxes = [track_box(t.box, t.track_id, t.class_name) for t in tracks]  # model frame, as lidar2img
    image = network_view(inputs.images, inputs.lidar2img, channels, boxes, cfg.mean, cfg.std)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return CompressedImage(header=make_header(inputs.stamp_ns, frame_id), format="jpeg", data=jpeg.tobytes())
