"""3D boxes as (N, 9) float arrays ``[x, y, z, l, w, h, yaw, vx, vy]``.

``(x, y, z)`` is the geometric center, ``l`` extends along the box x axis,
``w`` along y, ``h`` along z, ``yaw`` is the heading about z and
``(vx, vy)`` the planar velocity, all in the frame the array lives in.

This is the only module that knows nuScenes' ``(w, l, h)`` size order and
the bottom-center convention used by some detectors; everything else in the
package uses the layout above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from syncl_ros.geometry import Transform, quaternion_yaw, yaw_quaternion

BOX_DIM = 9
X, Y, Z, L, W, H, YAW, VX, VY = range(BOX_DIM)

# Corner order returned by corners(): bottom face first, then the top face
# directly above it; each face counter-clockwise seen from above, starting
# at front-left: (front-left, rear-left, rear-right, front-right).
_CORNER_SIGNS = np.array(
    [
        [1, 1, -1],
        [-1, 1, -1],
        [-1, -1, -1],
        [1, -1, -1],
        [1, 1, 1],
        [-1, 1, 1],
        [-1, -1, 1],
        [1, -1, 1],
    ],
    dtype=np.float64,
)


def _as_boxes(boxes: ArrayLike) -> NDArray[np.float64]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != BOX_DIM:
        raise ValueError(f"expected boxes of shape (N, {BOX_DIM}), got {b.shape}")
    return b


def lwh_from_wlh(wlh: ArrayLike) -> NDArray[np.float64]:
    """nuScenes (w, l, h) -> (l, w, h); works on (..., 3)."""
    return np.asarray(wlh, dtype=np.float64)[..., [1, 0, 2]]


def wlh_from_lwh(lwh: ArrayLike) -> NDArray[np.float64]:
    """(l, w, h) -> nuScenes (w, l, h); works on (..., 3)."""
    return np.asarray(lwh, dtype=np.float64)[..., [1, 0, 2]]


def center_from_bottom(boxes: ArrayLike) -> NDArray[np.float64]:
    """Boxes (..., 9) whose z is the bottom face -> geometric center (z + h/2)."""
    out = np.array(boxes, dtype=np.float64)
    out[..., Z] += out[..., H] / 2.0
    return out


def bottom_from_center(boxes: ArrayLike) -> NDArray[np.float64]:
    """Boxes (..., 9) with a geometric-center z -> bottom-face z (z - h/2)."""
    out = np.array(boxes, dtype=np.float64)
    out[..., Z] -= out[..., H] / 2.0
    return out


def from_nuscenes(
    translation: Sequence[float],
    size_wlh: Sequence[float],
    rotation_wxyz: Sequence[float],
    velocity_xy: Sequence[float] = (0.0, 0.0),
) -> NDArray[np.float64]:
    """One box (9,) from nuScenes annotation/result fields (center, wlh, wxyz quaternion)."""
    yaw = quaternion_yaw(Quaternion(np.asarray(rotation_wxyz, dtype=np.float64)))
    vel = np.nan_to_num(np.asarray(velocity_xy, dtype=np.float64)[:2])
    return np.concatenate([np.asarray(translation, dtype=np.float64), lwh_from_wlh(size_wlh), [yaw], vel])


def to_nuscenes(box9: ArrayLike) -> dict[str, Any]:
    """nuScenes fields of one box: translation, size (w, l, h), rotation (w, x, y, z), velocity."""
    b = np.asarray(box9, dtype=np.float64).reshape(BOX_DIM)
    return {
        "translation": b[[X, Y, Z]].tolist(),
        "size": wlh_from_lwh(b[[L, W, H]]).tolist(),
        "rotation": yaw_quaternion(b[YAW]).elements.tolist(),
        "velocity": b[[VX, VY]].tolist(),
    }


def from_devkit_box(box: Box) -> NDArray[np.float64]:
    """One box (9,) from a nuScenes devkit Box; an unknown (nan) velocity becomes 0."""
    return from_nuscenes(box.center, box.wlh, box.orientation.elements, box.velocity[:2])


def to_devkit_box(
    box9: ArrayLike,
    label: int | float = math.nan,
    score: float = math.nan,
    name: str | None = None,
    token: str | None = None,
) -> Box:
    """nuScenes devkit Box of one box (9,); vz is 0 because boxes carry planar velocity."""
    b = np.asarray(box9, dtype=np.float64).reshape(BOX_DIM)
    return Box(
        center=b[[X, Y, Z]].tolist(),
        size=wlh_from_lwh(b[[L, W, H]]).tolist(),
        orientation=yaw_quaternion(b[YAW]),
        label=label,
        score=score,
        velocity=(b[VX], b[VY], 0.0),
        name=name,
        token=token,
    )


def transform_boxes(boxes: ArrayLike, T: Transform) -> NDArray[np.float64]:
    """Express boxes (N,9) in T's parent frame.

    Centers and velocities use the full rotation; the heading is that of the
    rotated box x axis, which is exact when T rotates about z only.
    """
    b = _as_boxes(boxes)
    out = b.copy()
    out[:, [X, Y, Z]] = T.apply(b[:, [X, Y, Z]])
    heading = np.stack([np.cos(b[:, YAW]), np.sin(b[:, YAW]), np.zeros(len(b))], axis=1)
    rotated = T.rotate(heading)
    out[:, YAW] = np.arctan2(rotated[:, 1], rotated[:, 0])
    vel = np.concatenate([b[:, [VX, VY]], np.zeros((len(b), 1))], axis=1)
    out[:, [VX, VY]] = T.rotate(vel)[:, :2]
    return out


def corners(boxes: ArrayLike) -> NDArray[np.float64]:
    """Corners (N,8,3): bottom face then top face, each counter-clockwise from above from front-left."""
    b = _as_boxes(boxes)
    local = _CORNER_SIGNS[None, :, :] * b[:, None, [L, W, H]] / 2.0
    c, s = np.cos(b[:, YAW]), np.sin(b[:, YAW])
    x = c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
    y = s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
    out: NDArray[np.float64] = np.stack([x, y, local[..., 2]], axis=-1) + b[:, None, [X, Y, Z]]
    return out


def bev_corners(boxes: ArrayLike) -> NDArray[np.float64]:
    """Bird's-eye-view footprint (N,4,2), counter-clockwise from front-left."""
    return corners(boxes)[:, :4, :2]


def center_distance(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Pairwise xy distances (N,M) between box centers, the nuScenes matching metric."""
    da = _as_boxes(a)[:, None, [X, Y]]
    db = _as_boxes(b)[None, :, [X, Y]]
    return np.asarray(np.linalg.norm(da - db, axis=-1))
