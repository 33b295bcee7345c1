"""Bird's-eye view around the ego, drawn with OpenCV: forward is up, left is left, as the
camera mosaic beside it sits. Boxes come as overlay.OverlayBox (colour and label) in any
frame that ``to_ego`` maps into the ego frame (base_link)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.geometry import Transform
from syncl_ros.viz.overlay import FONT, Image, OverlayBox

RING_M = 10.0  # a range ring every this many metres


def _pixels(xy: NDArray[np.float64], size: int, scale: float) -> NDArray[np.int32]:
    """Ego-frame (x forward, y left) metres -> image pixels, ego at the center, forward up."""
    pixels: NDArray[np.float64] = np.stack([size / 2 - xy[:, 1] * scale, size / 2 - xy[:, 0] * scale], 1)
    return pixels.round().astype(np.int32)


def draw_bev(
    boxes: Sequence[OverlayBox], to_ego: Transform, size: int = 800, scale: float = 6.0, title: str = ""
) -> Image:
    """A size x size BGR picture: range rings, the boxes' footprints (labels at their front-left
    corner, heading marked by the front edge), the ego as a black triangle."""
    img = np.full((size, size, 3), 255, np.uint8)
    center = (size // 2, size // 2)
    for r in np.arange(RING_M, size / scale, RING_M):
        cv2.circle(img, center, int(r * scale), (225, 225, 225), 1, cv2.LINE_AA)
    for item in boxes:
        ego_box = box_ops.transform_boxes(item.box[None], to_ego)
        corners = _pixels(box_ops.bev_corners(ego_box)[0], size, scale)
        cv2.polylines(img, [corners], True, item.color, item.thickness, cv2.LINE_AA)
        cv2.line(img, tuple(corners[0]), tuple(corners[3]), item.color, item.thickness + 1, cv2.LINE_AA)
        if item.label:
            cv2.putText(img, item.label, tuple(corners[0]), FONT, 0.4, item.color, 1, cv2.LINE_AA)
    ego = np.array([[2.5, 0.0], [-1.5, 1.0], [-1.5, -1.0]])
    cv2.fillPoly(img, [_pixels(ego, size, scale)], (0, 0, 0))
    if title:
        cv2.putText(img, title, (10, 20), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img
