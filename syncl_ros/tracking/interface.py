"""Data exchanged between a tracker and the network, one frame at a time.

Per frame: ``slots = tracker.prepare(...)`` gives the decoder the S track
slots (:class:`TrackSlots`); the decoder runs Q detection queries plus the S
slots and hands back :class:`DecoderOutputs` (first Q rows detections, last S
rows the slots in slot order); ``tracker.update(outputs)`` returns the
reported :class:`Track` list. All arrays are numpy. Both trackers (track queries, greedy)
share the frame checks at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from syncl_ros.boxes import BOX_DIM
from syncl_ros.classes import NUM_CLASSES
from syncl_ros.geometry import Transform

REF_DIM = 3
UUID_BYTES = 16
FREE_REF = 0.5  # center of the range: a neutral reference for an unused query
NS_PER_S = 1e9


class ModelShape(Protocol):
    """The network settings a tracker reads (a ModelConfig has them): S track slots of C features,
    reference points normalized to the detection range ``pc_range``."""

    @property
    def num_slots(self) -> int: ...

    @property
    def embed_dim(self) -> int: ...

    @property
    def pc_range(self) -> tuple[float, ...]: ...


@dataclass
class TrackSlots:
    """What the decoder consumes for the S track slots (float32)."""

    embeddings: NDArray[np.float32]  # (S, C) query features carried from the last frame; zeros for free slots
    refs: NDArray[np.float32]  # (S, 3) normalized reference points after propagation; 0.5 for free slots
    mask: NDArray[np.bool_]  # (S,) True where a live track occupies the slot
    dt_s: float  # seconds since the previous processed frame; 0 on a first frame or after a reset

    @classmethod
    def empty(cls, num_slots: int, embed_dim: int, dt_s: float = 0.0) -> TrackSlots:
        """Every slot free: zero embedding, the neutral reference FREE_REF, no mask."""
        return cls(
            np.zeros((num_slots, embed_dim), np.float32),
            np.full((num_slots, REF_DIM), FREE_REF, np.float32),
            np.zeros(num_slots, bool),
            dt_s,
        )


def _rows(name: str, array: NDArray[Any], width: int | None) -> NDArray[Any]:
    a = np.asarray(array)
    if a.ndim != 2 or (width is not None and a.shape[1] != width):
        shape = f"(N, {width})" if width is not None else "(N, C)"
        raise ValueError(f"DecoderOutputs.{name}: expected shape {shape}, got {a.shape}")
    return a


@dataclass
class DecoderOutputs:
    """One frame's network outputs, decoded to boxes; rows are Q detection queries then the S slots."""

    scores: NDArray[np.float32]  # (Q+S, 10) class probabilities (sigmoid)
    boxes: NDArray[np.float64]  # (Q+S, 9) boxes in the current model frame
    refs: NDArray[np.float32]  # (Q+S, 3) refined normalized reference points
    embeddings: NDArray[np.float32]  # (Q+S, C) output query features

    def __post_init__(self) -> None:
        # Fail at construction, next to the network code that built the outputs.
        self.scores = _rows("scores", self.scores, NUM_CLASSES)
        self.boxes = _rows("boxes", self.boxes, BOX_DIM)
        self.refs = _rows("refs", self.refs, REF_DIM)
        self.embeddings = _rows("embeddings", self.embeddings, None)
        counts = {len(a) for a in (self.scores, self.boxes, self.refs, self.embeddings)}
        if len(counts) != 1:
            raise ValueError(
                "DecoderOutputs: scores, boxes, refs and embeddings need the same number of rows, got "
                f"{len(self.scores)}, {len(self.boxes)}, {len(self.refs)}, {len(self.embeddings)}"
            )

    @property
    def num_rows(self) -> int:
        return len(self.scores)

    def num_detections(self, num_slots: int) -> int:
        """Q, the detection rows ahead of the ``num_slots`` slot rows; ValueError if they do not fit."""
        q = self.num_rows - num_slots
        if q < 0:
            raise ValueError(f"DecoderOutputs: {self.num_rows} rows cannot hold the {num_slots} slot rows")
        return q


@dataclass(frozen=True, eq=False)
class Track:
    """One reported track; ``box`` (9,) is in the current model frame.

    Equality is not defined by value (float array); compare ``track_id``.
    """

    track_id: int  # small integer, never reused for the life of the tracker (also not after a reset)
    uuid: bytes  # 16 random bytes (UUID version 4), unique across runs
    label: int  # detection class index
    class_name: str
    score: float  # this frame's class score of the track query
    age: int  # frames since birth (0 on the birth frame)
    hits: int  # frames in which the track was confirmed (1 on the birth frame)
    frames_since_update: int  # 0 when confirmed this frame, > 0 while coasting
    box: NDArray[np.float64]  # (9,) [x, y, z, l, w, h, yaw, vx, vy], read-only

    def __post_init__(self) -> None:
        if len(self.uuid) != UUID_BYTES:
            raise ValueError(f"Track.uuid: expected {UUID_BYTES} bytes, got {len(self.uuid)}")
        box = np.array(self.box, dtype=np.float64).reshape(BOX_DIM)
        # Reported tracks are snapshots; freezing the box keeps them from aliasing tracker state.
        box.setflags(write=False)
        object.__setattr__(self, "box", box)


class Tracker(Protocol):
    """What the node and offline tracking need of a tracker (query-based or greedy)."""

    @property
    def resets(self) -> int: ...
    @property
    def last_reset_reason(self) -> str | None: ...
    @property
    def dropped_births(self) -> int: ...
    @property
    def duplicate_births(self) -> int: ...
    @property
    def full_table_frames(self) -> int: ...
    @property
    def reattached(self) -> int: ...
    @property
    def nonfinite_rows(self) -> int: ...
    @property
    def num_live(self) -> int: ...
    def prepare(self, timestamp_ns: int, model_to_world: Transform) -> TrackSlots: ...
    def update(self, outputs: DecoderOutputs) -> list[Track]: ...
    def reset(self) -> None: ...


# Frame checks and readings shared by the trackers.


def class_scores(
    scores: ArrayLike, allowed: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per row the best probability over the ``allowed`` labels and that label.

    Non-finite probabilities count as 0 so that one bad column cannot win the argmax.
    """
    p = np.asarray(scores, dtype=np.float64)[:, allowed]
    p = np.where(np.isfinite(p), p, 0.0)
    best = p.argmax(axis=1)
    return p[np.arange(len(p)), best], allowed[best]


def finite_rows(outputs: DecoderOutputs) -> NDArray[np.bool_]:
    """(N,) True where a row's scores, box, reference point and features are all finite."""
    parts = (outputs.scores, outputs.boxes, outputs.refs, outputs.embeddings)
    finite: NDArray[np.bool_] = np.logical_and.reduce([np.isfinite(a).all(axis=1) for a in parts])
    return finite


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
    if (t_ns - last_ns) / NS_PER_S > reset_gap_s:
        return "gap"  # constant-velocity prediction is meaningless over a long gap
    return None
