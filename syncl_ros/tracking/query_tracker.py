"""Host side of query-based 3D tracking at inference (PF-Track / MUTR3D family).

Per frame::

    slots = tracker.prepare(timestamp_ns, model_to_world)   # propagate live tracks
    outputs = network(images, slots)                        # Q detection queries + S slots
    tracks = tracker.update(outputs)                        # confirm / coast / end / give birth

A track lives in one of S fixed slots (static shapes for export). Each frame
its query is decoded again: a confident result replaces the track's box,
reference point and features; a weak one lets it coast on its constant
velocity motion, keeping its stored features, until it has missed more than
``max_missed`` frames; a coasting track's reported score is its decoded one times
``coast_score_decay`` per frame missed. With ``reattach_distance_m`` set, a track whose
query misses takes the nearest confident detection of its class within that distance
instead, as tracking by detection would (its row's box, features and score), and that
detection gives no birth. A confirmed track's velocity comes from its measured
displacement since its last confirmation (``measured_velocity`` sets the share;
the rest is the network's). Confident detection queries, best first, become new
tracks in free slots unless they lie closer than ``duplicate_distance_m`` to a
live track or to a better one born this frame. ``last_changes`` lists what an
update changed, so that training can mirror it. Training-time changes (such as
SynCL's) leave this inference logic as it is.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.classes import DETECTION_CLASSES, NUM_CLASSES, TRACKING_LABELS
from syncl_ros.geometry import Transform, relative_motion
from syncl_ros.tracking.config import TrackerConfig
from syncl_ros.tracking.interface import (
    NS_PER_S,
    UUID_BYTES,
    DecoderOutputs,
    ModelShape,
    Track,
    TrackSlots,
    check_frame_start,
    class_scores,
    finite_rows,
    reset_reason,
)
from syncl_ros.tracking.motion import propagate_boxes, refs_from_boxes, with_track_velocity
from syncl_ros.tracking.slots import SlotTable

__all__ = ["DecoderOutputs", "FrameChanges", "QueryTracker", "Track", "TrackSlots", "TrackerConfig"]


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.setflags(write=False)


def _slot_list(values: ArrayLike) -> NDArray[np.int64]:
    a = np.array(values, dtype=np.int64).reshape(-1)
    a.setflags(write=False)  # a record of a past frame, never a view of live state
    return a


@dataclass(frozen=True, eq=False)
class FrameChanges:
    """What one ``update()`` changed in the slot table, for training to mirror on its own tensors.

    Read-only int64 arrays. With Q detection rows and ``emb`` the stored (S, C) slot embeddings, the
    next frame's ``emb`` is this frame's after, in this order::

        emb[ended] = 0
        emb[refreshed] = outputs[Q + refreshed]
        emb[reattached_slots] = outputs[reattached_rows]
        emb[birth_slots] = outputs[birth_rows]

    ``refreshed``, ``reattached_slots`` and ``ended`` are disjoint, and ``birth_slots`` is disjoint
    from the first two; a slot may be in both ``ended`` and ``birth_slots`` (its track ended and a
    new one took the slot). A reattached track goes on with the object it followed.
    Slots a reset frees in ``prepare()`` are not listed: its returned mask shows them.
    """

    birth_rows: NDArray[np.int64]  # (B,) detection row (< Q) of each new track, best score first
    birth_slots: NDArray[np.int64]  # (B,) the slot each new track took, same order
    refreshed: NDArray[np.int64]  # (R,) ascending: slots confirmed this frame, embedding := own output row
    ended: NDArray[np.int64]  # (E,) ascending: slots freed because their track missed too often
    reattached_rows: NDArray[np.int64] = field(default_factory=lambda: _EMPTY)  # (A,) detection row taken
    reattached_slots: NDArray[np.int64] = field(default_factory=lambda: _EMPTY)  # (A,) by these slots

    def __post_init__(self) -> None:
        for name in (
            "birth_rows",
            "birth_slots",
            "refreshed",
            "ended",
            "reattached_rows",
            "reattached_slots",
        ):
            object.__setattr__(self, name, _slot_list(getattr(self, name)))
        for rows, slots in (("birth_rows", "birth_slots"), ("reattached_rows", "reattached_slots")):
            if len(getattr(self, rows)) != len(getattr(self, slots)):
                raise ValueError(f"FrameChanges: {rows} and {slots} need the same length")

    @classmethod
    def nothing(cls) -> FrameChanges:
        return cls(_EMPTY, _EMPTY, _EMPTY, _EMPTY)


def duplicate_candidates(
    centers: NDArray[np.float64], tracks: NDArray[np.float64], distance: float
) -> NDArray[np.bool_]:
    """(N,) True where a birth candidate is a duplicate.

    ``centers`` (N, 2) are the candidates' bird's-eye-view centers, best first; ``tracks`` (M, 2)
    those of the live tracks. A candidate closer than ``distance`` to a track, or to an earlier
    candidate that is not itself a duplicate, is one. ``distance`` 0 finds none.
    """
    dup = np.zeros(len(centers), dtype=bool)
    if distance <= 0.0 or len(centers) == 0:
        return dup
    dup |= _closer(centers, tracks, distance).any(axis=1)
    rest = np.flatnonzero(~dup)
    later_near = np.triu(_closer(centers[rest], centers[rest], distance), k=1)
    # Best first, each accepted candidate blocks the later ones near it. Only a candidate with a later
    # neighbour can block, so the loop visits those alone (whether i is blocked is known on reaching it).
    blocked = np.zeros(len(rest), dtype=bool)
    for i in np.flatnonzero(later_near.any(axis=1)):
        if not blocked[i]:
            blocked |= later_near[i]
    dup[rest[blocked]] = True
    return dup


def _closer(a: ArrayLike, b: ArrayLike, distance: float) -> NDArray[np.bool_]:
    """(N, M) True where points a (N, 2) and b (M, 2) lie closer than ``distance`` in the plane."""
    # float32 (micrometers at 100 m, ample for a meter-scale test) and per-axis differences keep the
    # temporaries in cache: ten times faster than float64 for a few hundred candidates.
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    dx = np.subtract.outer(a[:, 0], b[:, 0])
    dy = np.subtract.outer(a[:, 1], b[:, 1])
    dx *= dx
    dy *= dy
    dx += dy
    return np.asarray(dx < np.float32(distance) ** 2)


def nearest_pairs(dist: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """One-to-one pairs (rows, columns) of a distance matrix, nearest first; inf never pairs."""
    rows: list[int] = []
    cols: list[int] = []
    used_r = np.zeros(dist.shape[0], dtype=bool)
    used_c = np.zeros(dist.shape[1], dtype=bool)
    finite = np.flatnonzero(np.isfinite(dist.ravel()))
    most = min(dist.shape)
    for flat in finite[np.argsort(dist.ravel()[finite], kind="stable")]:
        i, j = divmod(int(flat), dist.shape[1])
        if not (used_r[i] or used_c[j]):
            used_r[i] = used_c[j] = True
            rows.append(i)
            cols.append(j)
            if len(rows) == most:  # every row or every column is paired: nothing left to pair
                break
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


class QueryTracker:
    """Slot-based tracker state across frames; see the module docstring for the frame protocol."""

    def __init__(self, config: TrackerConfig, model: ModelShape, seed: int | None = None) -> None:
        """``model``: the network's settings (its ModelConfig): slot count, query width, detection range."""
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config: expected a TrackerConfig, got {type(config).__name__}")
        self.config = config
        self.num_slots, self.embed_dim, self.pc_range = model.num_slots, model.embed_dim, model.pc_range
        labels = TRACKING_LABELS if config.tracking_labels_only else range(NUM_CLASSES)
        self._allowed = np.array(sorted(labels), dtype=np.int64)
        # UUIDs are random but reproducible for a given seed; seed None draws from OS entropy.
        self._rng = random.Random(seed)
        self._slots = SlotTable(self.num_slots, self.embed_dim)
        self._withheld = np.zeros(self.num_slots, dtype=bool)  # live slots prepare() kept from the decoder
        self._next_id = 1
        self._last_ns: int | None = None
        self._last_pose: Transform | None = None
        self._awaiting_update = False
        self._resets = 0
        self._last_reset_reason: str | None = None
        self._dropped_births = 0
        self._duplicate_births = 0
        self._reattached = 0
        self._full_table_frames = 0
        self._nonfinite_rows = 0
        self._last_changes = FrameChanges.nothing()

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
    def duplicate_births(self) -> int:
        """Confident detections that took no slot because a track or a better birth was near, summed."""
        return self._duplicate_births

    @property
    def reattached(self) -> int:
        """Missing tracks that took a nearby detection instead of coasting, summed over frames."""
        return self._reattached

    @property
    def full_table_frames(self) -> int:
        """Frames in which at least one birth (after the duplicate check) found no free slot."""
        return self._full_table_frames

    @property
    def last_changes(self) -> FrameChanges:
        """What the last ``update()`` changed (births, refreshed and ended slots); see FrameChanges."""
        return self._last_changes

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

    @property
    def withheld(self) -> NDArray[np.bool_]:
        """(S,) live slots the last ``prepare()`` kept out of the decoder (``decode_coasting`` false)."""
        return self._withheld.copy()

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
            dt_s = (t_ns - self._last_ns) / NS_PER_S
            self._propagate(dt_s, relative_motion(self._last_pose, model_to_world))
        self._last_ns, self._last_pose = t_ns, model_to_world
        # A prepare() without update() (a dropped frame) is fine: the state already lives in this frame.
        self._awaiting_update = True
        s = self._slots
        self._withheld = s.mask & (s.missed > 0) & (not self.config.decode_coasting)
        return TrackSlots(s.embeddings.copy(), s.refs.copy(), s.mask & ~self._withheld, dt_s)

    def update(self, outputs: DecoderOutputs) -> list[Track]:
        """Finish the frame prepared last; returns the reported tracks, best score first."""
        if not self._awaiting_update:
            raise RuntimeError("update() needs a prepare() for the same frame first")
        q = self._check_outputs(outputs)
        finite = finite_rows(outputs)
        score, label = class_scores(outputs.scores, self._allowed)
        score = np.where(finite, score, 0.0)
        withheld = self._withheld
        self._nonfinite_rows += int((~finite[:q]).sum() + (~finite[q:] & self._slots.mask & ~withheld).sum())
        finite[q:] &= ~withheld  # a withheld track's row was not decoded: it misses
        held_scores = self._slots.scores.copy()
        source = q + np.arange(self.num_slots)  # the output row each slot reads this frame
        taken_rows, taken_slots = self._reattach(outputs, q, score, label, finite)
        source[taken_slots] = taken_rows
        refreshed, ended = self._update_live(outputs, source, score[source], label[source], finite[source])
        self._decay_withheld(withheld, held_scores, taken_slots)
        refreshed = np.setdiff1d(refreshed, taken_slots)
        free_rows = finite[:q].copy()
        free_rows[taken_rows] = False
        rows, slots = self._give_birth(outputs, score[:q], label[:q], free_rows)
        self._last_changes = FrameChanges(rows, slots, refreshed, ended, taken_rows, taken_slots)
        self._awaiting_update = False
        return self._report()

    def reset(self) -> None:
        """Drop all tracks and forget the last frame; track ids keep counting."""
        self._start_over("requested")

    # ------------------------------------------------------------ internals

    def _start_over(self, reason: str) -> None:
        self._slots.clear()
        self._last_changes = FrameChanges.nothing()  # its slots no longer hold those tracks
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
        s.refs[live] = refs_from_boxes(s.boxes[live], self.pc_range)

    def _decay_withheld(
        self, withheld: NDArray[np.bool_], held_scores: NDArray[np.float64], taken: NDArray[np.int64]
    ) -> None:
        """A withheld track that goes on coasting reports its last score times the decay once more."""
        s = self._slots
        coasting = withheld & s.mask
        coasting[taken] = False
        s.scores[coasting] = held_scores[coasting] * self.config.coast_score_decay

    def _check_outputs(self, outputs: DecoderOutputs) -> int:
        """Number of detection rows Q, after checking the slot rows and feature width."""
        q = outputs.num_detections(self.num_slots)
        if outputs.embeddings.shape[1] != self.embed_dim:
            raise ValueError(
                f"DecoderOutputs.embeddings: expected width {self.embed_dim}, "
                f"got {outputs.embeddings.shape[1]}"
            )
        return q

    def _reattach(
        self,
        outputs: DecoderOutputs,
        q: int,
        score: NDArray[np.float64],
        label: NDArray[np.int64],
        finite: NDArray[np.bool_],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Pairs (detection rows, slots): live tracks whose own query misses and the nearest detection
        of their class within ``reattach_distance_m`` confident enough to confirm them, one to one.

        A detection closer than ``duplicate_distance_m`` to a track confirmed this frame is that
        track's second query, not a missing track's object."""
        cfg, s = self.config, self._slots
        if cfg.reattach_distance_m <= 0.0:  # off: no work on every frame
            return _EMPTY, _EMPTY
        confirmed = s.mask & finite[q:] & (score[q:] >= cfg.update_score)
        missing = np.flatnonzero(s.mask & ~confirmed)
        need = max(cfg.birth_score, cfg.update_score)
        dets = np.flatnonzero(finite[:q] & (score[:q] >= need))
        if len(missing) == 0 or len(dets) == 0:
            return _EMPTY, _EMPTY
        seen = outputs.boxes[q:][confirmed][:, :2]
        dets = dets[~_closer(outputs.boxes[dets][:, :2], seen, cfg.duplicate_distance_m).any(axis=1)]
        # Coasting boxes are this frame's (propagated in prepare()).
        gap = s.boxes[missing][:, None, :2] - outputs.boxes[dets][None, :, :2]
        dist = np.hypot(gap[..., 0], gap[..., 1])
        same = s.labels[missing][:, None] == label[dets][None, :]
        dist[~same | (dist >= cfg.reattach_distance_m)] = np.inf
        slot_idx, det_idx = nearest_pairs(dist)
        self._reattached += len(slot_idx)
        return dets[det_idx], missing[slot_idx]

    def _update_live(
        self,
        outputs: DecoderOutputs,
        source: NDArray[np.int64],
        score: NDArray[np.float64],
        label: NDArray[np.int64],
        finite: NDArray[np.bool_],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Confirm or coast every live slot, then end those that missed too often.

        Slot i reads output row ``source[i]`` (its own, or the detection it was reattached to);
        ``score``, ``label`` and ``finite`` are per slot. Returns the confirmed slots (their
        embeddings refreshed) and the ended ones.
        """
        s = self._slots
        live = s.mask.copy()
        # finite is explicit so that update_score = 0 can never let a NaN box in.
        hit = live & finite & (score >= self.config.update_score)
        miss = live & ~hit
        s.boxes[hit] = self._measured(outputs.boxes[source[hit]], s.seen_xy[hit], s.seen_ns[hit])
        self._mark_seen(hit)
        s.refs[hit] = outputs.refs[source[hit]]
        s.labels[hit] = label[hit]
        s.hits[hit] += 1
        s.missed[hit] = 0
        s.missed[miss] += 1
        # Only a confident output refreshes the memory (PF-Track, MixFormer): an unconfident one
        # may have drifted to another object or to background, while the box coasts on its motion.
        s.embeddings[hit] = outputs.embeddings[source[hit]]
        s.scores[live] = score[live]
        s.scores[miss] *= self.config.coast_score_decay ** s.missed[miss]
        dead = live & (s.missed > self.config.max_missed)
        s.free(dead)
        s.age[live & ~dead] += 1
        return np.flatnonzero(hit), np.flatnonzero(dead)

    def _give_birth(
        self,
        outputs: DecoderOutputs,
        score: NDArray[np.float64],
        label: NDArray[np.int64],
        finite: NDArray[np.bool_],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Confident detection rows, best first and not duplicates, become tracks in the free slots.

        Returns the detection rows born and their slots, in the same order.
        """
        rows = self._birth_candidates(outputs, score, finite)
        free = self._slots.free_indices()
        n = min(len(rows), len(free))
        self._dropped_births += len(rows) - n
        self._full_table_frames += int(len(rows) > n)
        rows = rows[:n]
        return rows, self._start_tracks(outputs, rows, score[rows], label[rows])

    def _start_tracks(
        self,
        outputs: DecoderOutputs,
        rows: NDArray[np.int64],
        score: NDArray[np.float64],
        label: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """New tracks from detection ``rows`` (no more than there are free slots); returns their slots."""
        slots = self._slots.free_indices()[: len(rows)]
        n = len(slots)
        s = self._slots
        s.mask[slots] = True
        s.boxes[slots] = outputs.boxes[rows]
        s.refs[slots] = outputs.refs[rows]
        s.embeddings[slots] = outputs.embeddings[rows]
        s.scores[slots] = score
        s.labels[slots] = label
        s.track_ids[slots] = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        s.uuids[slots] = self._new_uuids(n)
        s.age[slots] = 0
        s.hits[slots] = 1
        s.missed[slots] = 0
        self._mark_seen(slots)
        return slots

    # ------------------------------------------------------------ training only

    @property
    def live_slots(self) -> NDArray[np.int64]:
        """Indices of the live slots, ascending."""
        return self._slots.live_indices()

    def adopt(self, outputs: DecoderOutputs, rows: ArrayLike) -> NDArray[np.int64]:
        """Start tracks from detection ``rows`` of the last update's outputs whatever their score,
        into free slots (as many as there are); returns their slots.

        Training only: MUTR3D's false-positive tracks, which teach track queries to let go.
        """
        rows = np.asarray(rows, dtype=np.int64)[: len(self._slots.free_indices())]
        q = outputs.num_detections(self.num_slots)
        if len(rows) and (rows.min() < 0 or rows.max() >= q):
            raise ValueError(f"adopt: rows must be detection rows in [0, {q})")
        score, label = class_scores(outputs.scores[rows], self._allowed)
        return self._start_tracks(outputs, rows, score, label)

    def end(self, slots: ArrayLike) -> None:
        """End the tracks in ``slots`` now (training only: random track drops)."""
        self._slots.free(np.asarray(slots, dtype=np.int64))

    def _birth_candidates(
        self, outputs: DecoderOutputs, score: NDArray[np.float64], finite: NDArray[np.bool_]
    ) -> NDArray[np.int64]:
        """Detection rows that may give birth, best first: confident, finite and not duplicates."""
        candidates = np.flatnonzero(finite & (score >= self.config.birth_score))
        # Stable sort: equal scores go by query order, so runs are deterministic.
        rows = candidates[np.argsort(-score[candidates], kind="stable")]
        # Live boxes are this frame's: confirmed ones measured, coasting ones propagated.
        s = self._slots
        tracks = s.boxes[s.mask][:, :2]
        dup = duplicate_candidates(outputs.boxes[rows][:, :2], tracks, self.config.duplicate_distance_m)
        self._duplicate_births += int(dup.sum())
        return rows[~dup]

    def _measured(
        self, boxes: NDArray[np.float64], seen_xy: NDArray[np.float64], seen_ns: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        assert self._last_pose is not None and self._last_ns is not None  # set by prepare()
        weight = self.config.measured_velocity
        return with_track_velocity(boxes, self._last_pose, self._last_ns, seen_xy, seen_ns, weight)

    def _mark_seen(self, which: NDArray[np.bool_] | NDArray[np.int64]) -> None:
        """Remember where (world) and when the selected slots were confirmed."""
        assert self._last_pose is not None and self._last_ns is not None
        s = self._slots
        s.seen_xy[which] = self._last_pose.apply(s.boxes[which][:, :3])[:, :2]
        s.seen_ns[which] = self._last_ns

    def _new_uuids(self, n: int) -> NDArray[np.uint8]:
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
