"""Dense depth targets from the lidar, per camera and feature cell (BEVDepth-style supervision).

Every LIDAR_TOP point of a key frame is carried, as the nuScenes devkit's
``map_pointcloud_to_image`` does, from the lidar at its sweep time to the world
and from there into each camera at that camera's own capture time; here the
last leg is the network-input ``lidar2img`` of the model frame (which already
holds each camera's own ego pose and the input resize), so a point lands on the
pixel the network sees. Each stride-16 feature cell then takes the smallest
depth among its points: the nearest surface is the one the camera sees, since
the lidar, mounted higher, also hits what lies behind an occluder's edge.
Cells without a point carry 0 and are left out of the loss.

Everything is vectorized numpy; a synthetic frame (six cameras, ~28k points)
takes about 12 ms on one core, about 1 % of a detection step, so the targets
are computed while loading instead of cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from nuscenes.utils.geometry_utils import points_in_box

from syncl_ros.boxes import BOX_DIM, to_devkit_box
from syncl_ros.data.frames import Frame

MIN_DEPTH_M = 1.0  # the devkit's min_dist: nearer points are the car itself or noise


def read_lidar_points(path: str | Path) -> NDArray[np.float64]:
    """(M, 3) float64 points of a nuScenes `.pcd.bin` sweep in the sensor frame (via the devkit)."""
    from nuscenes.utils.data_classes import LidarPointCloud

    points: NDArray[np.float64] = LidarPointCloud.from_file(str(path)).points[:3].T.astype(np.float64)
    return points


def lidar_points_in_model_frame(frame: Frame) -> NDArray[np.float64]:
    """(M, 3) points of the frame's sweep in the model frame at the frame's reference time.

    Through the world: the sweep's own pose maps sensor -> world, the model
    frame's pose maps world -> model (the cameras' lidar2img then use their own
    capture-time poses).
    """
    if frame.lidar is None:
        raise ValueError(f"frame {frame.token} has no LIDAR_TOP sweep")
    lidar_to_model = frame.model_to_world.inverse() @ frame.lidar.lidar_to_world
    return lidar_to_model.apply(read_lidar_points(frame.lidar.path))


def project_points(
    points: NDArray[np.float64], lidar2img: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Model-frame points (M, 3) through each camera (N, 4, 4): pixels (N, M, 2) and depths (N, M).

    Depth is along the optical axis (the devkit's camera z); pixels of points
    at or behind the camera are meaningless and must be filtered by depth.
    """
    homo = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    # matmul, not einsum: einsum takes a slow non-BLAS path here (28 ms against 8 ms a synthetic frame).
    proj = homo[None] @ np.asarray(lidar2img, dtype=np.float64).transpose(0, 2, 1)  # (N, M, 4)
    depth = proj[..., 2]
    uv = proj[..., :2] / np.where(np.abs(depth) < 1e-9, 1e-9, depth)[..., None]
    return uv, depth


def min_depth_grid(
    uv: NDArray[np.float64],
    depth: NDArray[np.float64],
    h: int,
    w: int,
    stride: int,
    min_depth: float = MIN_DEPTH_M,
) -> NDArray[np.float32]:
    """(N, h, w) float32: the smallest depth of the points in each stride-sized cell, 0 where none.

    uv (N, M, 2) network-input pixels, depth (N, M); a cell spans pixels
    [col * stride, (col + 1) * stride) horizontally, likewise vertically.
    """
    n = depth.shape[0]
    col = np.floor(uv[..., 0] / stride)
    row = np.floor(uv[..., 1] / stride)
    keep = (depth >= min_depth) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    cam = np.broadcast_to(np.arange(n)[:, None], depth.shape)
    cell = (cam[keep] * h + row[keep].astype(np.int64)) * w + col[keep].astype(np.int64)
    grid = np.full(n * h * w, np.inf)
    np.minimum.at(grid, cell, depth[keep])
    grid[~np.isfinite(grid)] = 0.0
    return grid.reshape(n, h, w).astype(np.float32)


def points_in_boxes(points: NDArray[np.float64], boxes: ArrayLike) -> NDArray[np.bool_]:
    """(M,) whether each point (M, 3) lies inside any box (K, 9) of the same frame (devkit test)."""
    inside = np.zeros(len(points), dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, BOX_DIM):
        inside |= points_in_box(to_devkit_box(box), points.T)
    return inside


def frame_depth_targets(
    frame: Frame, lidar2img: ArrayLike, h: int, w: int, stride: int, objects_first: bool = False
) -> NDArray[np.float32]:
    """(N, h, w) per-cell lidar depth of one frame for network-input lidar2img (N, 4, 4); 0: no point.

    With `objects_first`, cells holding points inside the frame's ground-truth boxes take the
    nearest of those (module docstring).
    """
    points = lidar_points_in_model_frame(frame)
    uv, depth = project_points(points, lidar2img)
    grid = min_depth_grid(uv, depth, h, w, stride)
    if not objects_first or len(frame.boxes) == 0:
        return grid
    # The boxes sit at the frame's reference time, the sweep's points at its own: a fast mover's
    # trailing points can fall outside its box, and their cell keeps the nearest-point rule.
    on_object = points_in_boxes(points, frame.boxes)
    objects = min_depth_grid(uv[:, on_object], depth[:, on_object], h, w, stride)
    return np.where(objects > 0, objects, grid)
