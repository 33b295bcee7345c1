"""Tracking by detection: the network's per-frame detections linked by a greedy
center-distance tracker of the CenterPoint kind (the usual alternative to
query-based tracking, kept here as a baseline).

Each frame the network runs with every track slot empty, so all objects come
from the detection queries. A detection's center, moved back by its predicted
velocity over the frame interval, is compared with the last center of every
live track of the same class; detections claim their nearest track greedily,
best score first, within a per-class distance. Unclaimed detections start new
tracks; unclaimed tracks coast on their velocity for up to ``max_age`` frames
and are reported only on frames where a detection confirms them. Once a track
has been seen twice, its own measured velocity (``measured_velocity`` share,
as in the query tracker) replaces the detection's for prediction and output.

It has the same ``prepare``/``update`` protocol as :class:`RuntimeTracker`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import numpy as np

from syncl_ros import boxes as box_ops
from syncl_ros.classes import DETECTION_CLASSES, TRACKING_LABELS
from syncl_ros.geometry import Transform
from syncl_ros.tracking.interface import DecoderOutputs, Track, TrackSlots
from syncl_ros.tracking.motion import with_track_velocity
from syncl_ros.tracking.runtime import class_scores, finite_rows

# Largest center distance (m) for a match, per class: CenterPoint's nuScenes values.
MATCH_DISTANCE_M = {
    "car": 4.0,
    "truck": 4.0,
    "bus": 5.5,
    "trailer": 3.0,
    "pedestrian": 1.0,
    "motorcycle": 13.0,
    "bicycle": 3.0,
}


@dataclass(frozen=True)
class GreedyConfig:
    score: float = 0.1  # detections below this are ignored
    max_detections: int = 150  # per frame, best first
    max_age: int = 3  # frames a track may go unmatched before it ends
    measured_velocity: float = 1.0  # share of a track's measured velocity (0: the detections' only)
    distances: dict[str, float] = field(default_factory=lambda: dict(MATCH_DISTANCE_M))


@dataclass
class _State:
    track_id: int
    uuid: bytes
    label: int
    center: np.ndarray  # (2,) world x, y at the last frame (predicted while coasting)
    velocity: np.ndarray  # (2,) world vx, vy
    seen_ns: int  # time of the last confirmation
    seen_xy: np.ndarray  # (2,) world x, y at that confirmation
    box: np.ndarray  # (9,) model-frame box of the last confirmation, with the track's velocity
    age: int = 0
    hits: int = 1
    missed: int = 0


class GreedyTracker:
    def __init__(self, num_slots: int, embed_dim: int, config: GreedyConfig | None = None, seed: int = 0):
        self.config = config or GreedyConfig()
        self._num_slots, self._embed_dim = num_slots, embed_dim
        self._rng = random.Random(seed)
        self._allowed = np.array(sorted(TRACKING_LABELS))
        self._tracks: list[_State] = []
        self._next_id = 0
        self._dt_s = 0.0
        self._last_ns: int | None = None
        self._pose = Transform.identity()

    def prepare(self, timestamp_ns: int, model_to_world: Transform) -> TrackSlots:
        """Start a frame; every slot stays empty so the network only detects."""
        self._dt_s = 0.0 if self._last_ns is None else (int(timestamp_ns) - self._last_ns) * 1e-9
        self._last_ns, self._pose = int(timestamp_ns), model_to_world
        return TrackSlots(
            np.zeros((self._num_slots, self._embed_dim), np.float32),
            np.full((self._num_slots, 3), 0.5, np.float32),
            np.zeros(self._num_slots, bool),
            self._dt_s,
        )

    def update(self, outputs: DecoderOutputs) -> list[Track]:
        q = outputs.num_rows - self._num_slots
        score, label = class_scores(outputs.scores[:q], self._allowed)
        keep = finite_rows(outputs)[:q] & (score >= self.config.score)
        order = np.flatnonzero(keep)[np.argsort(-score[keep], kind="stable")][: self.config.max_detections]
        world = box_ops.transform_boxes(outputs.boxes[order], self._pose)
        claimed = self._assign(world, outputs.boxes[order], label[order])
        for state in self._tracks:
            if state.track_id not in claimed.values():
                state.center = state.center + state.velocity * self._dt_s
                state.missed += 1
                state.age += 1
        self._tracks = [s for s in self._tracks if s.missed <= self.config.max_age]
        return [self._report(claimed[i], float(score[row])) for i, row in enumerate(order)]

    def _motion(self, state: _State, world_box: np.ndarray) -> np.ndarray:
        """Expected world displacement of ``state`` over this frame interval."""
        measured = state.hits >= 2 and self.config.measured_velocity > 0.0
        velocity = state.velocity if measured else world_box[box_ops.VX : box_ops.VY + 1]
        return np.asarray(velocity * self._dt_s)

    def _assign(self, world: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> dict[int, int]:
        """Detection index -> track id; matched tracks take the detection's state."""
        by_id = {s.track_id: s for s in self._tracks}
        free = set(by_id)
        claimed: dict[int, int] = {}
        for i, (box, lab) in enumerate(zip(world, labels, strict=True)):
            limit = self.config.distances[DETECTION_CLASSES[int(lab)]]
            best, best_d = None, limit
            for tid in free:
                state = by_id[tid]
                d = float(np.linalg.norm(box[: box_ops.Y + 1] - self._motion(state, box) - state.center))
                if state.label == lab and d <= best_d:
                    best, best_d = tid, d
            if best is None:
                claimed[i] = self._birth(boxes[i], box, int(lab))
                continue
            free.discard(best)
            self._confirm(by_id[best], boxes[i], box)
            claimed[i] = best
        return claimed

    def _confirm(self, state: _State, model_box: np.ndarray, world_box: np.ndarray) -> None:
        now = self._last_ns or 0
        measured = with_track_velocity(
            model_box[None],
            self._pose,
            now,
            state.seen_xy[None],
            np.array([state.seen_ns]),
            self.config.measured_velocity,
        )[0]
        state.box = measured
        state.center, state.seen_xy, state.seen_ns = world_box[:2].copy(), world_box[:2].copy(), now
        state.velocity = box_ops.transform_boxes(measured[None], self._pose)[0, box_ops.VX : box_ops.VY + 1]
        state.age, state.hits, state.missed = state.age + 1, state.hits + 1, 0

    def _birth(self, model_box: np.ndarray, world_box: np.ndarray, label: int) -> int:
        tid, self._next_id = self._next_id, self._next_id + 1
        raw = uuid.UUID(int=self._rng.getrandbits(128), version=4).bytes
        vel = world_box[box_ops.VX : box_ops.VY + 1].copy()
        xy = world_box[:2].copy()
        self._tracks.append(_State(tid, raw, label, xy, vel, self._last_ns or 0, xy.copy(), box=model_box))
        return tid

    def _report(self, track_id: int, score: float) -> Track:
        state = next(s for s in self._tracks if s.track_id == track_id)
        return Track(
            track_id=track_id,
            uuid=state.uuid,
            label=state.label,
            class_name=DETECTION_CLASSES[state.label],
            score=score,
            age=state.age,
            hits=state.hits,
            frames_since_update=0,
            box=state.box.copy(),
        )
