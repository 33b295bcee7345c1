"""Host side of query-based 3D tracking at inference (PF-Track / MUTR3D family).

Per frame::

    slots = tracker.prepare(timestamp_ns, model_to_world)   # propagate live tracks
    outputs = network(images, slots)                        # Q detection queries + S slots
    tracks = tracker.update(outputs)                        # confirm / coast / end / give birth

A track lives in one of S fixed slots (static shapes for export). Each frame
its query is decoded again: a confident result replaces the track's box,
reference point and features; a weak one lets it coast on its constant
velocity motion until it has missed more than ``max_missed`` frames. A
confirmed track's velocity comes from its measured displacement since its last
confirmation (``measured_velocity`` sets the share; the rest is the network's). Confident
detection queries become new tracks in free slots. Training-time changes
(such as SynCL's) leave this inference logic as it is.
"""

from __future__ import annotations

import random
import uuid

import numpy as np

from syncl_ros.classes import DETECTION_CLASSES, NUM_CLASSES, TRACKING_LABELS
from syncl_ros.geometry import Transform, relative_motion
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.interface import UUID_BYTES, DecoderOutputs, Track, TrackSlots
from syncl_ros.tracking.motion import propagate_boxes, refs_from_boxes, with_track_velocity
from syncl_ros.tracking.slots import SlotTable

__all__ = ["DecoderOutputs", "RuntimeTracker", "Track", "TrackSlots", "TrackerConfig"]

_NS_PER_S = 1e9


def class_scores(scores: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row the best probability over the ``allowed`` labels and that label.

    Non-finite probabilities count as 0 so that one bad column cannot win the argmax.
    """
    p = np.asarray(scores, dtype=np.float64)[:, allowed]
    p = np.where(np.isfinite(p), p, 0.0)
    best = p.argmax(axis=1)
    return p[np.arange(len(p)), best], allowed[best]


def finite_rows(outputs: DecoderOutputs) -> np.ndarray:
    """(N,) True where a row's scores, box, reference point and features are all finite."""
    parts = (outputs.scores, outputs.boxes, outputs.refs, outputs.embeddings)
    return np.logical_and.reduce([np.isfinite(a).all(axis=1) for a in parts])


def check_frame_start(timestamp_ns: int, model_to_world: Transform) -> int:
    """The frame time as a Python int, after checking it and the ego pose."""
    if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, int | np.integer):
        raise TypeError(f"timestamp_ns: expected integer nanoseconds, got {timestamp_ns!r}")
    if not isinstance(model_to_world, Transform):
        raise TypeError(f"model_to_world: expected a Transform, got {type(model_to_world).__name__}")
    pose = np.concatenate([model_to_world.translation, model_to_world.rotation.elements])
    if not np.isfinite(pose).all():
        raise ValueError(f"model_to_world: non-finite pose {model_to_world!r}")
    return int(timestamp_ns)


def reset_reason(last_ns: int | None, t_ns: int, reset_gap_s: float) -> str | None:
    """Why a tracker must start over at frame time t_ns, or None to carry on."""
    if last_ns is None:
        return None  # first frame: nothing to discard
    if t_ns < last_ns:
        return "backward jump"  # e.g. a bag played in a loop
    if (t_ns - last_ns) / _NS_PER_S > reset_gap_s:
        return "gap"  # constant-velocity prediction is meaningless over a long gap
    return None


class RuntimeTracker:
    """Slot-based tracker state across frames; see the module docstring for the frame protocol."""

    def __init__(self, config: TrackerConfig, embed_dim: int, seed: int | None = None) -> None:
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config: expected a TrackerConfig, got {type(config).__name__}")
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int | np.integer) or embed_dim < 1:
            raise ValueError(f"embed_dim: expected an integer >= 1, got {embed_dim!r}")
        self.config = config
        self.embed_dim = int(embed_dim)
        labels = TRACKING_LABELS if config.tracking_labels_only else range(NUM_CLASSES)
        self._allowed = np.array(sorted(labels), dtype=np.int64)
        # UUIDs are random but reproducible for a given seed; seed None draws from OS entropy.
        self._rng = random.Random(seed)
        self._slots = SlotTable(config.num_slots, self.embed_dim)
        self._next_id = 1
        self._last_ns: int | None = None
        self._last_pose: Transform | None = None
        self._awaiting_update = False
        self._resets = 0
        self._last_reset_reason: str | None = None
        self._dropped_births = 0
        self._nonfinite_rows = 0

    # ------------------------------------------------------------ diagnostics

    @property
    def resets(self) -> int:
        """Times the state was discarded: backward jumps, long gaps and explicit reset() calls."""
        return self._resets

    @property
    def last_reset_reason(self) -> str | None:
        """'backward jump', 'gap' or 'requested'; None before the first reset."""
        return self._last_reset_reason

    @property
    def dropped_births(self) -> int:
        """Confident detections that found no free slot, summed over frames."""
        return self._dropped_births

    @property
    def nonfinite_rows(self) -> int:
        """Consulted output rows (detections and live slots) that held NaN or inf, summed over frames."""
        return self._nonfinite_rows

    @property
    def num_live(self) -> int:
        return int(self._slots.mask.sum())

    @property
    def live_ids(self) -> tuple[int, ...]:
        """Track ids of all live tracks (reported or not), ascending."""
        return tuple(sorted(int(i) for i in self._slots.track_ids[self._slots.mask]))

    def slot_of(self, track_id: int) -> int:
        """Slot index holding live track ``track_id`` (e.g. to pick its decoder row); KeyError if none."""
        hits = np.flatnonzero(self._slots.mask & (self._slots.track_ids == track_id))
        if len(hits) == 0:
            raise KeyError(f"no live track with id {track_id}")
        return int(hits[0])

    def live_tracks(self) -> list[Track]:
        """Every live track in slot order, regardless of the output threshold."""
        return [self._track(int(i)) for i in self._slots.live_indices()]

    # ------------------------------------------------------------ frame protocol

    def prepare(self, timestamp_ns: int, model_to_world: Transform) -> TrackSlots:
        """Start a frame: reset if time jumped, else move live tracks into this frame."""
        t_ns = check_frame_start(timestamp_ns, model_to_world)
        dt_s = 0.0
        reason = reset_reason(self._last_ns, t_ns, self.config.reset_gap_s)
        if reason is not None:
            self._start_over(reason)
        elif self._last_ns is not None and self._last_pose is not None:
            dt_s = (t_ns - self._last_ns) / _NS_PER_S
            self._propagate(dt_s, relative_motion(self._last_pose, model_to_world))
        self._last_ns, self._last_pose = t_ns, model_to_world
        # A prepare() without update() (a dropped frame) is fine: the state already lives in this frame.
        self._awaiting_update = True
        s = self._slots
        return TrackSlots(s.embeddings.copy(), s.refs.copy(), s.mask.copy(), dt_s)

    def update(self, outputs: DecoderOutputs) -> list[Track]:
        """Finish the frame prepared last; returns the reported tracks, best score first."""
        if not self._awaiting_update:
            raise RuntimeError("update() needs a prepare() for the same frame first")
        q = self._check_outputs(outputs)
        finite = finite_rows(outputs)
        score, label = class_scores(outputs.scores, self._allowed)
        score = np.where(finite, score, 0.0)
        self._nonfinite_rows += int((~finite[:q]).sum() + (~finite[q:] & self._slots.mask).sum())
        self._update_live(outputs, q, score[q:], label[q:], finite[q:])
        self._give_birth(outputs, score[:q], label[:q], finite[:q])
        self._awaiting_update = False
        return self._report()

    def reset(self) -> None:
        """Drop all tracks and forget the last frame; track ids keep counting."""
        self._start_over("requested")

    # ------------------------------------------------------------ internals

    def _start_over(self, reason: str) -> None:
        self._slots.clear()
        self._last_ns = None
        self._last_pose = None
        self._awaiting_update = False
        self._resets += 1
        self._last_reset_reason = reason

    def _propagate(self, dt_s: float, prev_to_cur: Transform) -> None:
        s = self._slots
        live = s.live_indices()
        if len(live) == 0:
            return
        s.boxes[live] = propagate_boxes(s.boxes[live], dt_s, prev_to_cur)
        s.refs[live] = refs_from_boxes(s.boxes[live], self.config.pc_range)

    def _check_outputs(self, outputs: DecoderOutputs) -> int:
        """Number of detection rows Q, after checking the slot rows and feature width."""
        q = outputs.num_detections(self.config.num_slots)
        if outputs.embeddings.shape[1] != self.embed_dim:
            raise ValueError(
                f"DecoderOutputs.embeddings: expected width {self.embed_dim}, "
                f"got {outputs.embeddings.shape[1]}"
            )
        return q

    def _update_live(
        self, outputs: DecoderOutputs, q: int, score: np.ndarray, label: np.ndarray, finite: np.ndarray
    ) -> None:
        """Confirm or coast every live slot, then end those that missed too often."""
        s = self._slots
        live = s.mask.copy()
        # finite is explicit so that update_score = 0 can never let a NaN box in.
        hit = live & finite & (score >= self.config.update_score)
        miss = live & ~hit
        s.boxes[hit] = self._measured(outputs.boxes[q:][hit], s.seen_xy[hit], s.seen_ns[hit])
        self._mark_seen(hit)
        s.refs[hit] = outputs.refs[q:][hit]
        s.labels[hit] = label[hit]
        s.hits[hit] += 1
        s.missed[hit] = 0
        s.missed[miss] += 1
        # A coasting query still attended this frame's images: keep its features, not its box.
        attended = hit | (miss & finite)
        s.embeddings[attended] = outputs.embeddings[q:][attended]
        s.scores[live] = score[live]
        dead = live & (s.missed > self.config.max_missed)
        s.free(dead)
        s.age[live & ~dead] += 1

    def _give_birth(
        self, outputs: DecoderOutputs, score: np.ndarray, label: np.ndarray, finite: np.ndarray
    ) -> None:
        """Confident detection rows, best first, become tracks in the free slots."""
        candidates = np.flatnonzero(finite & (score >= self.config.birth_score))
        # Stable sort: equal scores go by query order, so runs are deterministic.
        rows = candidates[np.argsort(-score[candidates], kind="stable")]
        free = self._slots.free_indices()
        n = min(len(rows), len(free))
        self._dropped_births += len(rows) - n
        rows, slots = rows[:n], free[:n]
        s = self._slots
        s.mask[slots] = True
        s.boxes[slots] = outputs.boxes[rows]
        s.refs[slots] = outputs.refs[rows]
        s.embeddings[slots] = outputs.embeddings[rows]
        s.scores[slots] = score[rows]
        s.labels[slots] = label[rows]
        s.track_ids[slots] = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        s.uuids[slots] = self._new_uuids(n)
        s.age[slots] = 0
        s.hits[slots] = 1
        s.missed[slots] = 0
        self._mark_seen(slots)

    def _measured(self, boxes: np.ndarray, seen_xy: np.ndarray, seen_ns: np.ndarray) -> np.ndarray:
        assert self._last_pose is not None and self._last_ns is not None  # set by prepare()
        weight = self.config.measured_velocity
        return with_track_velocity(boxes, self._last_pose, self._last_ns, seen_xy, seen_ns, weight)

    def _mark_seen(self, which: np.ndarray) -> None:
        """Remember where (world) and when the selected slots were confirmed."""
        assert self._last_pose is not None and self._last_ns is not None
        s = self._slots
        s.seen_xy[which] = self._last_pose.apply(s.boxes[which][:, :3])[:, :2]
        s.seen_ns[which] = self._last_ns

    def _new_uuids(self, n: int) -> np.ndarray:
        raw = b"".join(uuid.UUID(int=self._rng.getrandbits(128), version=4).bytes for _ in range(n))
        return np.frombuffer(raw, dtype=np.uint8).reshape(n, UUID_BYTES)

    def _report(self) -> list[Track]:
        s = self._slots
        idx = np.flatnonzero(s.mask & (s.scores >= self.config.output_score))
        # Best score first; ties by id (older first) for a deterministic order.
        order = idx[np.lexsort((s.track_ids[idx], -s.scores[idx]))][: self.config.max_outputs]
        return [self._track(int(i)) for i in order]

    def _track(self, i: int) -> Track:
        s = self._slots
        label = int(s.labels[i])
        return Track(
            track_id=int(s.track_ids[i]),
            uuid=s.uuids[i].tobytes(),
            label=label,
            class_name=DETECTION_CLASSES[label],
            score=float(s.scores[i]),
            age=int(s.age[i]),
            hits=int(s.hits[i]),
            frames_since_update=int(s.missed[i]),
            box=s.boxes[i],
        )
