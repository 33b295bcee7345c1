"""Tracking by detection: the network's per-frame detections linked by a greedy
center-distance tracker of the CenterPoint kind (the usual alternative to
query-based tracking, kept here as a baseline).

Each frame the network runs with every track slot empty, so all objects come
from the detection queries. A detection's center, moved back by its predicted
velocity over the frame interval, is compared with the last center of every
live track of the same class; detections claim their nearest track greedily,
best score first, within a per-class distance. Unclaimed detections start new
tracks. With ``update_score`` below ``score``, weaker detections then get a
second pass, as in ByteTrack: they may continue a track no confident detection
claimed, but never start one, so a track survives a frame where its object
scored low. Unclaimed tracks coast on their velocity for up to ``max_age``
frames and are reported only on frames where a detection confirms them (or,
with ``coast_score_decay`` above 0, at their prediction with a decayed score,
as SimpleTrack does). Once a track
has been seen twice, its own measured velocity (``measured_velocity`` share,
as in the query tracker) replaces the detection's for prediction and output.

It has the same frame protocol, resets and counters as :class:`QueryTracker` and is chosen
with ``tracker.method: greedy``; its settings are ``tracker.greedy`` (:class:`GreedyConfig`).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from syncl_ros import boxes as box_ops
from syncl_ros.classes import DETECTION_CLASSES, TRACKING_LABELS
from syncl_ros.geometry import Transform
from syncl_ros.tracking.config import GreedyConfig, TrackerConfig
from syncl_ros.tracking.interface import (
    DecoderOutputs,
    ModelShape,
    Track,
    TrackSlots,
    check_frame_start,
    class_scores,
    finite_rows,
    reset_reason,
)
from syncl_ros.tracking.motion import with_track_velocity

__all__ = ["GreedyConfig", "GreedyTracker"]


@dataclass
class _State:
    track_id: int
    uuid: bytes
    label: int
    center: NDArray[np.float64]  # (2,) world x, y at the last frame (predicted while coasting)
    velocity: NDArray[np.float64]  # (2,) world vx, vy
    seen_ns: int  # time of the last confirmation
    box: NDArray[np.float64]  # (9,) model-frame box of the last confirmation, with the track's velocity
    world_box: NDArray[np.float64]  # (9,) that confirmation's detection in the world frame
    score: float  # the last confirmation's detection score
    age: int = 0
    hits: int = 1
    missed: int = 0


class GreedyTracker:
    def __init__(self, config: TrackerConfig, model: ModelShape, seed: int | None = None) -> None:
        """``model``: the network's settings, for the shape of the (always empty) track slots."""
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config: expected a TrackerConfig, got {type(config).__name__}")
        self.config = config
        self._num_slots, self._embed_dim = model.num_slots, model.embed_dim
        self._rng = random.Random(seed)
        self._allowed = np.array(sorted(TRACKING_LABELS))
        self._tracks: list[_State] = []
        self._next_id = 1
        self._dt_s = 0.0
        self._last_ns: int | None = None
        self._pose = Transform.identity()
        self.resets = 0
        self.last_reset_reason: str | None = None
        self.dropped_births = 0  # confident detections beyond max_detections, summed over frames
        # A detection near a track it cannot claim (other class, already claimed) is a new object here,
        # never a suppressed duplicate; and the track list has no fixed size, so it is never full.
        self.duplicate_births = 0
        self.full_table_frames = 0
        self.reattached = 0  # every track is matched to detections here: none has a query to miss
        self.nonfinite_rows = 0  # detection rows holding NaN or inf, summed over frames

    @property
    def num_live(self) -> int:
        return len(self._tracks)

    def prepare(self, timestamp_ns: int, model_to_world: Transform) -> TrackSlots:
        """Start a frame (resetting after a backward jump or a long gap); every slot stays empty
        so the network only detects."""
        t_ns = check_frame_start(timestamp_ns, model_to_world)
        reason = reset_reason(self._last_ns, t_ns, self.config.reset_gap_s)
        if reason is not None:
            self._start_over(reason)
        self._dt_s = 0.0 if self._last_ns is None else (t_ns - self._last_ns) * 1e-9
        self._last_ns, self._pose = t_ns, model_to_world
        return TrackSlots.empty(self._num_slots, self._embed_dim, self._dt_s)

    def update(self, outputs: DecoderOutputs) -> list[Track]:
        q = outputs.num_detections(self._num_slots)
        score, label = class_scores(outputs.scores[:q], self._allowed)
        finite = finite_rows(outputs)[:q]
        self.nonfinite_rows += int((~finite).sum())
        greedy = self.config.greedy
        strong = self._best_first(finite & (score >= greedy.score), score)
        self.dropped_births += max(0, len(strong) - greedy.max_detections)
        strong = strong[: greedy.max_detections]
        weak_from = greedy.score if greedy.update_score is None else greedy.update_score
        weak = self._best_first(finite & (score >= weak_from) & (score < greedy.score), score)
        weak = weak[: max(0, greedy.max_detections - len(strong))]
        order = np.concatenate([strong, weak])
        world = box_ops.transform_boxes(outputs.boxes[order], self._pose)
        claimed = self._assign(world, outputs.boxes[order], label[order], score[order], len(strong))
        seen = set(claimed.values())
        for state in self._tracks:
            if state.track_id not in seen:
                state.center = state.center + state.velocity * self._dt_s
                state.missed += 1
                state.age += 1
        self._tracks = [s for s in self._tracks if s.missed <= greedy.max_age]
        by_id = {state.track_id: state for state in self._tracks}
        return [self._report(by_id[tid]) for tid in claimed.values()] + self._coasting()

    def _coasting(self) -> list[Track]:
        """Tracks confirmed at least twice and missed this frame, at their predicted centers, with
        their last score times ``coast_score_decay`` per frame missed (none when it is 0)."""
        decay = self.config.greedy.coast_score_decay
        states = [s for s in self._tracks if s.missed > 0 and s.hits >= 2] if decay > 0 else []
        if not states:
            return []
        world = np.stack([s.world_box for s in states])
        world[:, : box_ops.Y + 1] = [s.center for s in states]
        world[:, box_ops.VX : box_ops.VY + 1] = [s.velocity for s in states]
        boxes = box_ops.transform_boxes(world, self._pose.inverse())
        return [self._report(s, box, s.score * decay**s.missed) for s, box in zip(states, boxes, strict=True)]

    @staticmethod
    def _best_first(mask: NDArray[np.bool_], score: NDArray[np.float64]) -> NDArray[np.int64]:
        rows = np.flatnonzero(mask)
        return rows[np.argsort(-score[rows], kind="stable")]

    def reset(self) -> None:
        """Drop all tracks and forget the last frame; track ids keep counting."""
        self._start_over("requested")

    def _start_over(self, reason: str) -> None:
        self._tracks, self._last_ns = [], None
        self.resets += 1
        self.last_reset_reason = reason

    def _assign(
        self,
        world: NDArray[np.float64],
        boxes: NDArray[np.float64],
        labels: NDArray[np.int64],
        scores: NDArray[np.float64],
        num_strong: int,
    ) -> dict[int, int]:
        """Detection index -> track id; matched tracks take the detection's state. Each detection,
        in the given order (strong ones first, best score first), claims the nearest free track of
        its class within the class distance, its distances to every track computed at once (a
        frame may hold hundreds of both). An unmatched strong detection starts a track; an
        unmatched weak one (index >= ``num_strong``) is dropped and left out of the result."""
        tracks = list(self._tracks)  # tracks born below are not claimed in their own frame
        centers = np.array([s.center for s in tracks], np.float64).reshape(-1, 2)
        labels_t = np.array([s.label for s in tracks], np.int64)
        # Expected displacement over this interval: a track seen twice moves by its measured
        # velocity, a younger one by the detection's (the only velocity it has).
        own_motion = np.array([s.velocity for s in tracks], np.float64).reshape(-1, 2) * self._dt_s
        uses_measured = self.config.greedy_measured_velocity > 0.0
        measured = np.array([s.hits >= 2 for s in tracks], bool) & uses_measured
        free = np.ones(len(tracks), bool)
        claimed: dict[int, int] = {}
        matched: list[int] = []  # detection indices that claimed a track, in claim order
        matched_tracks: list[_State] = []
        for i, (box, lab) in enumerate(zip(world, labels, strict=True)):
            motion = np.where(measured[:, None], own_motion, box[box_ops.VX : box_ops.VY + 1] * self._dt_s)
            dist = np.linalg.norm(box[: box_ops.Y + 1] - motion - centers, axis=1)
            limit = self.config.greedy.distances[DETECTION_CLASSES[int(lab)]]
            candidates = np.flatnonzero(free & (labels_t == lab) & (dist <= limit))
            if candidates.size == 0:
                if i < num_strong:
                    claimed[i] = self._birth(boxes[i], box, int(lab), float(scores[i]))
                continue
            j = int(candidates[np.argmin(dist[candidates])])
            free[j] = False
            matched.append(i)
            matched_tracks.append(tracks[j])
            claimed[i] = tracks[j].track_id
        self._confirm(matched_tracks, boxes[matched], world[matched], scores[matched])
        return claimed

    def _confirm(
        self,
        states: list[_State],
        model_boxes: NDArray[np.float64],
        world_boxes: NDArray[np.float64],
        scores: NDArray[np.float64],
    ) -> None:
        """The claimed tracks take their detections' boxes, with velocities measured since each
        track's last confirmation (all at once: the geometry is per call, not per box)."""
        now = self._last_ns or 0
        seen_xy = np.array([s.world_box[:2] for s in states], np.float64).reshape(-1, 2)
        seen_ns = np.array([s.seen_ns for s in states], np.int64)
        measured = with_track_velocity(
            model_boxes, self._pose, now, seen_xy, seen_ns, self.config.greedy_measured_velocity
        )
        velocities = box_ops.transform_boxes(measured, self._pose)[:, box_ops.VX : box_ops.VY + 1]
        rows = zip(states, measured, world_boxes, velocities, scores, strict=True)
        for state, box, world_box, velocity, score in rows:
            state.box, state.world_box, state.velocity = box, world_box.copy(), velocity
            state.score = float(score)
            state.center, state.seen_ns = world_box[:2].copy(), now
            state.age, state.hits, state.missed = state.age + 1, state.hits + 1, 0

    def _birth(
        self, model_box: NDArray[np.float64], world_box: NDArray[np.float64], label: int, score: float
    ) -> int:
        tid, self._next_id = self._next_id, self._next_id + 1
        raw = uuid.UUID(int=self._rng.getrandbits(128), version=4).bytes
        vel = world_box[box_ops.VX : box_ops.VY + 1].copy()
        xy = world_box[:2].copy()
        self._tracks.append(
            _State(tid, raw, label, xy, vel, self._last_ns or 0, model_box, world_box.copy(), score)
        )
        return tid

    def _report(
        self, state: _State, box: NDArray[np.float64] | None = None, score: float | None = None
    ) -> Track:
        """A confirmed track as confirmed; a coasting one with the given predicted box and score."""
        return Track(
            track_id=state.track_id,
            uuid=state.uuid,
            label=state.label,
            class_name=DETECTION_CLASSES[state.label],
            score=state.score if score is None else score,
            age=state.age,
            hits=state.hits,
            frames_since_update=state.missed,
            box=(state.box if box is None else box).copy(),
        )
