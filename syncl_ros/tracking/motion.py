"""Moving tracks from one frame to the next: constant velocity plus ego motion.

Host-side numpy twin of the box coder's reference-point normalization, so
that the tracker needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from syncl_ros.boxes import VX, VY, X, Y, transform_boxes
from syncl_ros.geometry import Transform


def _lo_span(pc_range: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(pc_range, dtype=np.float64)
    return r[:3], r[3:] - r[:3]


def normalize_points(xyz: np.ndarray, pc_range: Sequence[float]) -> np.ndarray:
    """Metric points (..., 3) -> reference points in [0, 1] over the range (not clipped)."""
    lo, span = _lo_span(pc_range)
    return np.asarray((np.asarray(xyz, dtype=np.float64) - lo) / span)


def denormalize_refs(refs: np.ndarray, pc_range: Sequence[float]) -> np.ndarray:
    """Reference points (..., 3) in [0, 1] -> metric points."""
    lo, span = _lo_span(pc_range)
    return np.asarray(np.asarray(refs, dtype=np.float64) * span + lo)


def refs_from_boxes(boxes: np.ndarray, pc_range: Sequence[float]) -> np.ndarray:
    """Reference points of box centers, clipped to [0, 1] as the decoder expects."""
    return np.clip(normalize_points(np.asarray(boxes)[:, :3], pc_range), 0.0, 1.0)


def propagate_boxes(boxes: np.ndarray, dt_s: float, prev_to_cur: Transform) -> np.ndarray:
    """Boxes (N, 9) of the previous model frame, predicted ``dt_s`` later, in the current frame.

    The center moves by its planar velocity over ``dt_s`` in the previous frame
    (velocities are over ground, so the ego's own motion is handled only by the
    frame change); then center, heading and velocity are re-expressed in the
    current frame. Unlike PF-Track, heading and velocity are rotated too.
    """
    moved = np.array(boxes, dtype=np.float64)
    moved[:, [X, Y]] += moved[:, [VX, VY]] * dt_s
    return transform_boxes(moved, prev_to_cur)
