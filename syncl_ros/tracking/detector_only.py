"""The detector alone: every frame's detections, unlinked, for detection metrics (mAP, NDS).

A query-based 3D detector (DETR3D, PETR) is scored on nuScenes by its top K (query, class)
pairs per frame, whatever their score: each query may appear once per class, and low scores
stay in, because the detection metrics sweep the score themselves. Reporting only the boxes a
tracker keeps (one class per query, scores above a threshold) cuts the precision-recall curve
short and under-states the detector. :class:`DetectorOnly` reports exactly those top K pairs,
every track slot empty (as for the greedy tracker), each box a new id; it follows the tracker
frame protocol so that offline runs reuse the node's frame pipeline unchanged.
"""

from __future__ import annotations

import uuid

import numpy as np

from syncl_ros.classes import DETECTION_CLASSES, TRACKING_LABELS
from syncl_ros.geometry import Transform
from syncl_ros.tracking.interface import (
    DecoderOutputs,
    ModelShape,
    Track,
    TrackSlots,
    check_frame_start,
    finite_rows,
)

MAX_BOXES_LIMIT = 500  # the nuScenes detection benchmark's limit per sample
DEFAULT_MAX_BOXES = 300  # what DETR3D and PETR keep


class DetectorOnly:
    """Top ``max_boxes`` (query, class) pairs of each frame, over the tracking classes."""

    def __init__(self, model: ModelShape, max_boxes: int = DEFAULT_MAX_BOXES) -> None:
        if not 1 <= max_boxes <= MAX_BOXES_LIMIT:
            raise ValueError(f"max_boxes: expected 1 to {MAX_BOXES_LIMIT}, got {max_boxes}")
        self.max_boxes = max_boxes
        self._num_slots, self._embed_dim = model.num_slots, model.embed_dim
        self._allowed = np.array(sorted(TRACKING_LABELS))
        self._next_id = 1
        self._last_ns: int | None = None
        self.nonfinite_rows = 0  # detection rows holding NaN or inf, summed over frames
        # Nothing is linked, so nothing is reset, born, suppressed or reattached.
        self.resets = 0
        self.last_reset_reason: str | None = None
        self.dropped_births = 0
        self.duplicate_births = 0
        self.full_table_frames = 0
        self.reattached = 0

    @property
    def num_live(self) -> int:
        return 0

    def prepare(self, timestamp_ns: int, model_to_world: Transform) -> TrackSlots:
        t_ns = check_frame_start(timestamp_ns, model_to_world)
        dt_s = 0.0 if self._last_ns is None else (t_ns - self._last_ns) * 1e-9
        self._last_ns = t_ns
        return TrackSlots.empty(self._num_slots, self._embed_dim, dt_s)

    def update(self, outputs: DecoderOutputs) -> list[Track]:
        q = outputs.num_detections(self._num_slots)
        finite = finite_rows(outputs)[:q]
        self.nonfinite_rows += int((~finite).sum())
        rows = np.flatnonzero(finite)
        probs = np.asarray(outputs.scores[rows][:, self._allowed], np.float64)
        order = np.argsort(-probs, axis=None, kind="stable")[: self.max_boxes]
        row_of, col_of = np.unravel_index(order, probs.shape)
        return [
            self._box(outputs, int(rows[r]), int(self._allowed[c]), float(probs[r, c]))
            for r, c in zip(row_of, col_of, strict=True)
        ]

    def _box(self, outputs: DecoderOutputs, row: int, label: int, score: float) -> Track:
        tid, self._next_id = self._next_id, self._next_id + 1
        return Track(
            track_id=tid,
            uuid=uuid.UUID(int=tid, version=4).bytes,  # unique within a run; nothing is published
            label=label,
            class_name=DETECTION_CLASSES[label],
            score=score,
            age=0,
            hits=1,
            frames_since_update=0,
            box=outputs.boxes[row],
        )

    def reset(self) -> None:
        """Forget the last frame's time; ids keep counting."""
        self._last_ns = None
