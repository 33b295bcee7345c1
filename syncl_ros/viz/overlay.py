"""3D boxes projected into camera images, and the six cameras laid out as the rig sits.

ROS-free (numpy + OpenCV). Boxes are (9,) arrays in the frame that a camera's 4x4
``lidar2img`` maps from (geometry.ego_to_image: ``[u*d, v*d, d, 1] = M @ [x, y, z, 1]``),
so the same code draws world-frame results on dataset images and model-frame tracks on
the network's input images. Edges are clipped at a near plane in front of the camera
(a box partly behind the camera keeps its visible part) and at the image border.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.classes import CLASS_COLORS, UNKNOWN_COLOR

BGR = tuple[int, int, int]
Image = NDArray[np.uint8]  # (H, W, 3) BGR
GT_COLOR: BGR = (170, 170, 170)
NEAR_M = 0.1  # edges are cut where they come closer than this to the camera plane
# boxes.corners() order: bottom face 0-3, top face 4-7 directly above, then the four pillars.
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
# Camera tiles as the rig sits: the front row over the back row, left to right as seen from above.
RIG_LAYOUT = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_bgr(class_name: str) -> BGR:
    """OpenCV colour of a class (the RViz markers' colour)."""
    r, g, b = CLASS_COLORS.get(class_name, UNKNOWN_COLOR)
    return (round(b * 255), round(g * 255), round(r * 255))


@dataclass(frozen=True)
class OverlayBox:
    """A box to draw: (9,) [x, y, z, l, w, h, yaw, vx, vy], its colour and an optional label."""

    box: NDArray[np.float64]
    color: BGR
    label: str = ""
    thickness: int = 2


def track_box(box: NDArray[np.float64], track_id: int | str, class_name: str) -> OverlayBox:
    """A track in its class colour, labelled with its id and speed."""
    speed_kmh = float(np.hypot(box[box_ops.VX], box[box_ops.VY])) * 3.6
    return OverlayBox(np.asarray(box, np.float64), class_bgr(class_name), f"{track_id} {speed_kmh:.0f} km/h")


def gt_box(box: ArrayLike) -> OverlayBox:
    """A ground-truth box: thin, grey, unlabelled (drawn under the tracks)."""
    return OverlayBox(np.asarray(box, np.float64), GT_COLOR, "", 1)


def _homogeneous(points: NDArray[np.float64], lidar2img: ArrayLike) -> NDArray[np.float64]:
    """(N, 3) points -> (N, 3) rows (u*d, v*d, d): linear in the point, so segments clip linearly."""
    p = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    return np.asarray(p @ np.asarray(lidar2img, np.float64).T)[:, :3]


def project_box_edges(
    box: ArrayLike, lidar2img: ArrayLike, size: tuple[int, int], near: float = NEAR_M
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The visible parts of a box's 12 edges in an image of ``size`` (width, height), in pixels.

    An edge with both ends closer than ``near`` (behind the camera) is dropped; one crossing the
    near plane is cut there before projecting, so it never wraps around through infinity.
    """
    h = _homogeneous(box_ops.corners(np.asarray(box, np.float64)[None])[0], lidar2img)
    width, height = size
    segments = []
    for i, j in BOX_EDGES:
        a, b = h[i], h[j]
        if a[2] < near and b[2] < near:
            continue
        if a[2] < near:
            a = a + (near - a[2]) / (b[2] - a[2]) * (b - a)
        elif b[2] < near:
            b = b + (near - b[2]) / (a[2] - b[2]) * (a - b)
        p0 = np.clip(a[:2] / a[2], -1e6, 1e6).round().astype(int)
        p1 = np.clip(b[:2] / b[2], -1e6, 1e6).round().astype(int)
        inside, q0, q1 = cv2.clipLine(
            (0, 0, width, height), (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1]))
        )
        if inside:
            segments.append(((int(q0[0]), int(q0[1])), (int(q1[0]), int(q1[1]))))
    return segments


def draw_boxes(image: Image, boxes: Sequence[OverlayBox], lidar2img: ArrayLike) -> Image:
    """Draw ``boxes`` into ``image`` (BGR uint8, in place) and return it; labels above each box."""
    size = (image.shape[1], image.shape[0])
    for item in boxes:
        segments = project_box_edges(item.box, lidar2img, size)
        for p0, p1 in segments:
            cv2.line(image, p0, p1, item.color, item.thickness, cv2.LINE_AA)
        if item.label and segments:
            _label(image, item.label, min((p for s in segments for p in s), key=lambda p: p[1]), item.color)
    return image


def _label(image: Image, text: str, anchor: tuple[int, int], color: BGR) -> None:
    """Text on a dark patch just above ``anchor``, kept inside the image."""
    scale = max(0.35, image.shape[0] / 900.0)
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    x = int(np.clip(anchor[0], 0, max(0, image.shape[1] - w)))
    y = int(np.clip(anchor[1] - 4, h + base, image.shape[0] - base))
    cv2.rectangle(image, (x, y - h - base), (x + w, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), FONT, scale, color, 1, cv2.LINE_AA)


def caption(image: Image, text: str) -> Image:
    """A white caption on a dark patch in the top-left corner (in place)."""
    _label(image, text, (4, 0), (255, 255, 255))
    return image


def mosaic(
    tiles: Mapping[str, Image],
    tile_size: tuple[int, int],
    layout: Sequence[Sequence[str]] = RIG_LAYOUT,
    captions: bool = True,
) -> Image:
    """Camera images laid out as the rig sits; a missing camera is a black tile that says so."""
    width, height = tile_size
    rows = []
    for row in layout:
        cells = []
        for channel in row:
            image = tiles.get(channel)
            cell: Image
            if image is None:
                cell = np.zeros((height, width, 3), np.uint8)
                _label(cell, f"{channel}: no image", (4, height // 2), (0, 0, 255))
            else:
                same = image.shape[:2] == (height, width)
                cell = image if same else _resized(image, (width, height))
            if captions:
                caption(cell, channel)
            cells.append(cell)
        rows.append(np.hstack(cells))
    return np.vstack(rows)


def _resized(image: Image, size: tuple[int, int]) -> Image:
    """``image`` scaled to ``size`` (width, height), averaging over areas."""
    return cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))  # the dtype stays uint8


def beside(left: Image, right: Image) -> Image:
    """``right`` scaled to ``left``'s height and put to its right."""
    scale = left.shape[0] / right.shape[0]
    if scale != 1.0:
        size = (max(1, round(right.shape[1] * scale)), left.shape[0])
        right = _resized(right, size)
    return np.hstack([left, right])


def denormalize(pixels: NDArray[np.float32], mean: Sequence[float], std: Sequence[float]) -> Image:
    """A network input (3, H, W) float32, normalized RGB -> BGR uint8 image, as the network sees it."""
    rgb = pixels.transpose(1, 2, 0) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.ascontiguousarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])


def network_view(
    images: NDArray[np.float32],
    lidar2img: NDArray[np.float32],
    channels: Sequence[str],
    boxes: Sequence[OverlayBox],
    mean: Sequence[float],
    std: Sequence[float],
) -> Image:
    """The network's inputs (N, 3, H, W), normalized, with ``boxes`` (model frame) projected by each
    camera's input-pixel ``lidar2img`` (N, 4, 4): the mosaic of exactly what the tracker saw."""
    if len(images) != len(channels) or len(lidar2img) != len(channels):
        raise ValueError(f"{len(channels)} cameras but {len(images)} images and {len(lidar2img)} matrices")
    tiles = {
        ch: draw_boxes(denormalize(images[i], mean, std), boxes, lidar2img[i])
        for i, ch in enumerate(channels)
    }
    height, width = images.shape[2], images.shape[3]
    return mosaic(tiles, (width, height))
