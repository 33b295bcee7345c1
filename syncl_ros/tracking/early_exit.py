"""Dynamic early exit across the decoder layers (DyTrack-style), decided on the host.

Every decoder layer has its own heads, so the frame could stop after any of them. After layer k
it stops when the layers after it could hardly change what the tracker does with the frame:
- each confirmed live track's box and each new track's box moved at most ``max_move_m``
  (bird's-eye view) since the previous layer -- after layer 1, a track since its propagated
  position, and a new track has no earlier box: the frame goes on;
- with ``score_margin`` > 0 also: no live track scores within the margin of ``update_score``, no
  detection within it of the birth score (off as tuned: docs/early_exit.md).
Layers below ``min_layers`` always run; so does every layer on every ``full_every``-th frame and
on the first frame after a reset, whose decisions start the state that later frames rest on.

The rule reads only the host-side DecoderOutputs of each layer, so every backend and every run
(the node, offline tracking, the benchmarks) stops at the same layer on the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from syncl_ros.classes import NUM_CLASSES, TRACKING_LABELS
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.interface import DecoderOutputs, TrackSlots, class_scores


class EarlyExit:
    """The exit rule of one tracker's frames (its state: frames since the last full-depth one)."""

    def __init__(self, config: TrackerConfig, num_layers: int) -> None:
        self.config = config.early_exit
        self.num_layers = num_layers
        greedy = config.method == "greedy"
        # The scores at which the tracker's decisions flip: a detection's birth (greedy: its use),
        # a live track's confirmation.
        self.birth_score = config.greedy.score if greedy else config.birth_score
        self.update_score = config.update_score
        labels = TRACKING_LABELS if greedy or config.tracking_labels_only else range(NUM_CLASSES)
        self._allowed = np.array(sorted(labels), dtype=np.int64)
        self._resets: int | None = None
        self._frames = 0  # since the last reset
        self._full = True
        self._live = np.zeros(0, bool)  # per slot
        self._previous_xy = np.zeros((0, 2))

    def start_frame(self, slots: TrackSlots, resets: int, pc_range: Sequence[float]) -> None:
        """A new frame with the decoder's slots; ``resets``: the tracker's reset count so far;
        ``pc_range``: the model's detection range, which the slots' reference points normalize."""
        if resets != self._resets:
            self._resets, self._frames = resets, 0
        self._full = self._frames % self.config.full_every == 0
        self._frames += 1
        self._live = np.asarray(slots.mask, bool).copy()
        # Before layer 1 only the tracks have a position: where the tracker propagated them.
        lo, hi = np.asarray(pc_range[:2], np.float64), np.asarray(pc_range[3:5], np.float64)
        track_xy = np.asarray(slots.refs, np.float64)[:, :2] * (hi - lo) + lo
        self._previous_xy = track_xy  # the detection rows are prepended on the first layer

    @property
    def full_depth(self) -> bool:
        """Whether this frame runs every layer whatever its outputs (then nothing asks stops_after)."""
        return self._full or self.config.min_layers >= self.num_layers

    def stops_after(self, layer: int, outputs: DecoderOutputs) -> bool:
        """Whether the frame skips the layers after ``layer`` (from 1) given that layer's outputs."""
        q = outputs.num_detections(len(self._live))
        previous = self._previous_xy
        if layer == 1:  # no earlier box of a detection row: NaN, never settled
            previous = np.concatenate([np.full((q, 2), np.nan), previous])
        self._previous_xy = np.asarray(outputs.boxes[:, :2], np.float64)
        if self._full or layer < self.config.min_layers or layer >= self.num_layers:
            return False
        moved = np.linalg.norm(self._previous_xy - previous, axis=1)
        return self._settled(outputs, q, moved)

    def _settled(self, outputs: DecoderOutputs, q: int, moved: NDArray[np.float64]) -> bool:
        score, _ = class_scores(outputs.scores, self._allowed)
        margin = self.config.score_margin
        detections, tracks = score[:q], score[q:]
        if np.any(np.abs(tracks[self._live] - self.update_score) < margin):
            return False
        if np.any(np.abs(detections - self.birth_score) < margin):
            return False
        confirmed = self._live & (tracks >= self.update_score)
        decisive = np.concatenate([detections >= self.birth_score, confirmed])
        # NaN (no earlier box, a non-finite box) fails the comparison: the frame goes on.
        return bool(np.all(moved[decisive] <= self.config.max_move_m))


def early_exit_for(config: TrackerConfig, num_layers: int) -> EarlyExit | None:
    """The exit rule the tracker settings ask for; None when early exit is off."""
    return EarlyExit(config, num_layers) if config.early_exit.enabled else None
