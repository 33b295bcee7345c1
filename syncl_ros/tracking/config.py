"""Settings of the trackers at inference (the `tracker:` section of config/<name>.yaml)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from syncl_ros.config import setting

_PROB = {"min": 0.0, "max": 1.0}
_POS = {"gt": 0}
_NONNEG = {"min": 0}


def _fail(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"TrackerConfig.{name}: expected {expected}, got {value!r}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass; True as a slot count is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _fail(name, f"an integer >= {minimum}", value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_probability(name: str, value: Any) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise _fail(name, "a number in [0, 1]", value)


TRACKING_METHODS = ("queries", "greedy")

# Largest center distance (m) for a greedy match, per class: CenterPoint's nuScenes values.
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
    """Tracking by detection (:mod:`syncl_ros.tracking.greedy`): CenterPoint-style association."""

    score: float = setting(0.1, "greedy tracker: detections below this score start no track", **_PROB)
    # ByteTrack's second association: a detection too weak to start a track may still continue
    # one that no confident detection claimed, which keeps tracks alive through low-score frames.
    update_score: float | None = setting(
        None,
        "greedy tracker: detections from this score up (below score) may continue a track left "
        "unclaimed; unset or not below score: one pass",
        **_PROB,
    )
    max_detections: int = setting(
        150, "greedy tracker: detections considered per frame, best first", **_NONNEG
    )
    max_age: int = setting(3, "greedy tracker: frames a track may go unmatched before it ends", **_NONNEG)
    # Its own setting because the two trackers tune apart: linking detections of a one-frame
    # network needs measured motion more than track queries that carry their own.
    measured_velocity: float | None = setting(
        None,
        "greedy tracker: share of a track's velocity measured from its motion; unset: the query "
        "tracker's measured_velocity",
        **_PROB,
    )
    # As SimpleTrack does: a track that misses a frame is still reported, at its predicted center
    # and a decayed score, so one missed detection need not cost a false negative.
    coast_score_decay: float = setting(
        0.0,
        "greedy tracker: a track confirmed twice and missed this frame is reported at its last "
        "score times this per frame missed; 0: only confirmed tracks are reported",
        **_PROB,
    )
    # Largest center distance (m) for a match, per class; classes not given keep CenterPoint's.
    distances: dict[str, float] = field(default_factory=lambda: dict(MATCH_DISTANCE_M))

    def __post_init__(self) -> None:
        _check_probability("greedy.score", self.score)
        if self.update_score is not None:
            _check_probability("greedy.update_score", self.update_score)
            object.__setattr__(self, "update_score", float(self.update_score))
        _check_probability("greedy.coast_score_decay", self.coast_score_decay)
        _check_int("greedy.max_detections", self.max_detections, 0)
        _check_int("greedy.max_age", self.max_age, 0)
        if self.measured_velocity is not None:
            _check_probability("greedy.measured_velocity", self.measured_velocity)
            object.__setattr__(self, "measured_velocity", float(self.measured_velocity))
        # A class left out keeps CenterPoint's gate, so one class can be set alone
        # (tracker.greedy.distances.pedestrian=2.0); a name that is not a class is a typo.
        unknown = sorted(set(self.distances) - set(MATCH_DISTANCE_M))
        if unknown or not all(_is_number(d) and d > 0 for d in self.distances.values()):
            expected = f"positive distances for classes among {sorted(MATCH_DISTANCE_M)}"
            raise _fail("greedy.distances", expected, self.distances)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "coast_score_decay", float(self.coast_score_decay))
        for name in ("max_detections", "max_age"):
            object.__setattr__(self, name, int(getattr(self, name)))
        distances = {**MATCH_DISTANCE_M, **self.distances}
        object.__setattr__(self, "distances", {k: float(v) for k, v in distances.items()})


@dataclass(frozen=True)
class EarlyExitConfig:
    """Dynamic early exit across the decoder layers (:mod:`syncl_ros.tracking.early_exit`): after a
    layer whose outputs leave no tracking decision in doubt, the frame skips the layers after it.
    Thresholds tuned on development scenes; see docs/early_exit.md."""

    enabled: bool = setting(False, "early exit: skip the decoder layers a frame does not need")
    min_layers: int = setting(2, "early exit: decoder layers every frame runs at least", min=1)
    # 0 (off) as tuned: on the development scenes every margin tried (0.002 to 0.1) stopped the
    # wrong frames and cost AMOTA (docs/early_exit.md).
    score_margin: float = setting(
        0.0,
        "early exit: no live track may score this close to update_score, no detection this close to "
        "the birth score; 0: off",
        **_PROB,
    )
    max_move_m: float = setting(
        0.3,
        "early exit: largest move (m, bird's-eye view) since the previous layer of a confirmed "
        "track's or a new track's box",
        **_NONNEG,
    )
    full_every: int = setting(
        10, "early exit: every n-th frame, and the first after a reset, runs every layer", min=1
    )

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise _fail("early_exit.enabled", "true or false", self.enabled)
        _check_int("early_exit.min_layers", self.min_layers, 1)
        _check_int("early_exit.full_every", self.full_every, 1)
        _check_probability("early_exit.score_margin", self.score_margin)
        if not _is_number(self.max_move_m) or self.max_move_m < 0.0:
            raise _fail("early_exit.max_move_m", "a distance >= 0 in meters", self.max_move_m)
        for name in ("min_layers", "full_every"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("score_margin", "max_move_m"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds and limits of tracking at inference.

    ``method`` picks the tracker: "queries", the network's own track queries (PF-Track / MUTR3D
    style, the thresholds below), or "greedy", its per-frame detections linked by center distance
    (``greedy`` settings). A released model stores the method it was validated with. The track
    slots and the detection range are the model's (``model.num_slots``, ``model.pc_range``).
    """

    method: Literal["queries", "greedy"] = setting(
        "queries",
        "queries (the network's track queries) | greedy (its detections linked by center distance)",
    )
    birth_score: float = setting(0.4, "query tracker: score a detection needs to start a track", **_PROB)
    update_score: float = setting(
        0.4, "query tracker: score a track needs to count as seen (below it, it coasts)", **_PROB
    )
    # A confident detection this close to a live track or to a better detection born this frame is
    # a second query on one object.
    duplicate_distance_m: float = setting(
        1.0,
        "query tracker: no birth this close (m, bird's-eye view) to a track or a better new one; 0: off",
        **_NONNEG,
    )
    # A young track of a fast mover often decodes behind its object while a detection query finds it
    # (docs/training.md): without this, the track coasts and the object is born again under a new id.
    reattach_distance_m: float = setting(
        0.0,
        "query tracker: a track that misses takes the nearest detection of its class this close "
        "(m, bird's-eye view) scoring >= birth_score and update_score; 0: off",
        **_NONNEG,
    )
    # A coasting track's query has lost its object; decoded, it still claims the nearest seed and
    # hides that seed's detection row, so the object it sits on may be lost too (docs/training.md).
    decode_coasting: bool = setting(
        True,
        "query tracker: decode a coasting track's query (false: it coasts on its motion alone, its "
        "score decaying by coast_score_decay per frame, and comes back only by reattachment)",
    )
    # PF-Track: 7 at 800x320, 6 at 1600x640; MUTR3D: 5.
    max_missed: int = setting(6, "query tracker: frames a track may coast unseen before it ends", **_NONNEG)
    output_score: float = setting(0.2, "query tracker: score a track needs to be reported", **_PROB)
    # A track that has missed its object reports an unconfident decoded score that overlaps its
    # matched ones; the longer it coasts, the likelier its object is gone (docs/training.md).
    coast_score_decay: float = setting(
        1.0,
        "query tracker: a coasting track reports its score times this per frame missed (1: as decoded)",
        **_PROB,
    )
    max_outputs: int = setting(150, "tracks reported per frame at most, best first", **_NONNEG)
    reset_gap_s: float = setting(
        3.0, "a forward gap between frames this long starts the tracker over", **_POS
    )
    # One-frame networks cannot see speed.
    measured_velocity: float = setting(
        1.0, "share of a track's velocity measured from its motion (0: the network's estimate)", **_PROB
    )
    tracking_labels_only: bool = setting(True, "score and give birth on the 7 tracking classes only")
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    early_exit: EarlyExitConfig = field(default_factory=EarlyExitConfig)

    def __post_init__(self) -> None:
        if self.method not in TRACKING_METHODS:
            raise _fail("method", f"one of {TRACKING_METHODS}", self.method)
        if not isinstance(self.greedy, GreedyConfig):
            raise _fail("greedy", "a GreedyConfig", self.greedy)
        if not isinstance(self.early_exit, EarlyExitConfig):
            raise _fail("early_exit", "an EarlyExitConfig", self.early_exit)
        _check_int("max_missed", self.max_missed, 0)
        _check_int("max_outputs", self.max_outputs, 0)
        for name in ("birth_score", "update_score", "output_score", "measured_velocity", "coast_score_decay"):
            _check_probability(name, getattr(self, name))
        if not _is_number(self.reset_gap_s) or self.reset_gap_s <= 0.0:
            raise _fail("reset_gap_s", "a positive number of seconds", self.reset_gap_s)
        for name in ("duplicate_distance_m", "reattach_distance_m"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0.0:
                raise _fail(name, "a distance >= 0 in meters (0: off)", value)
        for name in ("tracking_labels_only", "decode_coasting"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(name, "true or false", getattr(self, name))
        # Numpy scalars pass the checks; store plain Python numbers so configs serialize cleanly.
        for name in ("max_missed", "max_outputs"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in (
            "birth_score",
            "update_score",
            "output_score",
            "coast_score_decay",
            "measured_velocity",
            "reset_gap_s",
            "duplicate_distance_m",
            "reattach_distance_m",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def greedy_measured_velocity(self) -> float:
        """The greedy tracker's measured-velocity share: its own if set, else the shared one."""
        own = self.greedy.measured_velocity
        return self.measured_velocity if own is None else own
