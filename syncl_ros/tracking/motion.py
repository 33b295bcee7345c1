"""Moving tracks from one frame to the next: constant velocity plus ego motion, and
the velocity a track measures from its own displacement.

Host-side numpy twin of the box coder's reference-point normalization, so
that the tracker needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.boxes import VX, VY, X, Y, Z, transform_boxes
from syncl_ros.geometry import Transform, transform_velocities


def _lo_span(pc_range: Sequence[float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r = np.asarray(pc_range, dtype=np.float64)
    return r[:3], r[3:] - r[:3]


def normalize_points(xyz: ArrayLike, pc_range: Sequence[float]) -> NDArray[np.float64]:
    """Metric points (..., 3) -> reference points in [0, 1] over the range (not clipped)."""
    lo, span = _lo_span(pc_range)
    return np.asarray((np.asarray(xyz, dtype=np.float64) - lo) / span)


def denormalize_refs(refs: ArrayLike, pc_range: Sequence[float]) -> NDArray[np.float64]:
    """Reference points (..., 3) in [0, 1] -> metric points."""
    lo, span = _lo_span(pc_range)
    return np.asarray(np.asarray(refs, dtype=np.float64) * span + lo)


def refs_from_boxes(boxes: ArrayLike, pc_range: Sequence[float]) -> NDArray[np.float64]:
    """Reference points of box centers, clipped to [0, 1] as the decoder expects."""
    return np.clip(normalize_points(np.asarray(boxes)[:, :3], pc_range), 0.0, 1.0)


def propagate_boxes(boxes: ArrayLike, dt_s: float, prev_to_cur: Transform) -> NDArray[np.float64]:
    """Boxes (N, 9) of the previous model frame, predicted ``dt_s`` later, in the current frame.

    The center moves by its planar velocity over ``dt_s`` in the previous frame
    (velocities are over ground, so the ego's own motion is handled only by the
    frame change); then center, heading and velocity are re-expressed in the
    current frame. Unlike PF-Track, heading and velocity are rotated too.
    """
    moved = np.array(boxes, dtype=np.float64)
    moved[:, [X, Y]] += moved[:, [VX, VY]] * dt_s
    return transform_boxes(moved, prev_to_cur)


def with_track_velocity(
    boxes: ArrayLike,
    model_to_world: Transform,
    now_ns: int,
    seen_xy: NDArray[np.float64],
    seen_ns: ArrayLike,
    weight: float,
) -> NDArray[np.float64]:
    """Boxes (N, 9) of tracks confirmed again, their velocity blended with their measured motion.

    A network that sees one frame at a time cannot observe speed, so its
    velocity is often near zero; the displacement of a track's world center
    since its last confirmation (``seen_xy`` (N, 2) at ``seen_ns`` (N,)) can.
    ``weight`` is the share of that measured velocity (0 keeps the network's).
    Rows without an earlier time (dt <= 0) keep the network's velocity.
    """
    out = np.array(boxes, dtype=np.float64)
    if weight == 0.0 or len(out) == 0:
        return out
    dt_s = (now_ns - np.asarray(seen_ns, dtype=np.int64)) * 1e-9
    ok = dt_s > 0.0
    world_xy = model_to_world.apply(out[:, [X, Y, Z]])[:, :2]
    net_world = transform_velocities(model_to_world, out[:, [VX, VY]])
    measured = (world_xy - seen_xy) / np.where(ok, dt_s, 1.0)[:, None]
    blended = np.where(ok[:, None], weight * measured + (1.0 - weight) * net_world, net_world)
    out[:, [VX, VY]] = transform_velocities(model_to_world.inverse(), blended)
    return out
