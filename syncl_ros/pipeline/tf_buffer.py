"""A small transform buffer and ego-pose sources.

tf2_ros is not used: it ships only with a ROS install (not pip-installable),
and the tracker needs just a few lookups per frame. This buffer keeps static
edges (/tf_static) and a bounded time history per dynamic edge (/tf), looks
up transforms through the frame tree in any direction, interpolates in time
(slerp / lerp) and raises :class:`TfError` subclasses (all LookupError) with
messages that say what is missing. Pure Python: no rclpy; stamps are int ns.

A :class:`~syncl_ros.geometry.Transform` maps points from a child frame into
its parent frame, so an edge parent -> child stores ``T_parent_child`` and
``lookup(target, source, t)`` returns ``T_target_source``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from syncl_ros.geometry import Transform, interpolate

NS_PER_S = 1_000_000_000
DEFAULT_CACHE_NS = 10 * NS_PER_S
# Hard cap per edge, whatever the publishing rate (a 1 kHz source keeps 10 s).
MAX_SAMPLES = 10_000
MAX_DEPTH = 1_000  # frame trees are shallow; deeper means a loop slipped in


@dataclass(frozen=True)
class StampedTransform:
    """One tf edge: ``transform`` maps ``child`` into ``parent`` at ``stamp_ns``."""

    parent: str
    child: str
    stamp_ns: int
    transform: Transform


class TfError(LookupError):
    """A transform cannot be looked up."""


class UnknownFrameError(TfError):
    """A frame was never received."""


class ConnectivityError(TfError):
    """Both frames exist but belong to different trees."""


class ExtrapolationError(TfError):
    """The stamp is outside the buffered time range by more than the tolerance."""


class PastExtrapolationError(ExtrapolationError):
    """The stamp is older than the oldest buffered transform."""


class FutureExtrapolationError(ExtrapolationError):
    """The stamp is newer than the newest buffered transform."""


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _check_transform(transform: Transform) -> None:
    values = np.concatenate([transform.translation, transform.rotation.elements])
    if not np.all(np.isfinite(values)):
        raise ValueError(f"non-finite transform {transform!r}")


class TransformHistory:
    """Time-sorted samples of one moving edge, bounded to ``cache_ns`` behind the newest."""

    def __init__(self, cache_ns: int = DEFAULT_CACHE_NS, max_samples: int = MAX_SAMPLES) -> None:
        self.cache_ns = int(cache_ns)
        self.max_samples = max_samples
        self._stamps: list[int] = []
        self._transforms: list[Transform] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def oldest_ns(self) -> int | None:
        return self._stamps[0] if self._stamps else None

    @property
    def newest_ns(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def span(self) -> tuple[int, int] | None:
        """(oldest, newest) stamp; None when empty."""
        return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def insert(self, stamp_ns: int, transform: Transform) -> None:
        """Add a sample; a stamp older than the whole window starts a new timeline (time jumped back)."""
        stamp_ns = int(stamp_ns)
        newest = self.newest_ns
        if newest is not None and stamp_ns < newest - self.cache_ns:
            self.clear()
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            self._transforms[i] = transform  # re-sent stamp: the newest value wins
        else:
            self._stamps.insert(i, stamp_ns)
            self._transforms.insert(i, transform)
        self._prune()

    def _prune(self) -> None:
        horizon = self._stamps[-1] - self.cache_ns
        cut = bisect.bisect_left(self._stamps, horizon)
        cut = max(cut, len(self._stamps) - self.max_samples)
        if cut > 0:
            del self._stamps[:cut]
            del self._transforms[:cut]

    def clear(self) -> None:
        self._stamps.clear()
        self._transforms.clear()

    def at(self, stamp_ns: int, tolerance_ns: int, what: str) -> Transform:
        """Sample at ``stamp_ns``: interpolated inside the range, extrapolated up to ``tolerance_ns``."""
        if not self._stamps:
            raise TfError(f"{what}: no data")
        stamps, transforms = self._stamps, self._transforms
        if stamp_ns < stamps[0] - tolerance_ns:
            raise PastExtrapolationError(
                f"{what}: lookup at {stamp_ns} ns would extrapolate into the past: oldest data is "
                f"{_ms(stamps[0] - stamp_ns)} newer (tolerance {_ms(tolerance_ns)})"
            )
        if stamp_ns > stamps[-1] + tolerance_ns:
            raise FutureExtrapolationError(
                f"{what}: lookup at {stamp_ns} ns would extrapolate into the future: newest data is "
                f"{_ms(stamp_ns - stamps[-1])} older (tolerance {_ms(tolerance_ns)})"
            )
        if len(stamps) == 1:
            return transforms[0]
        # The bracketing pair, or the outermost pair when extrapolating within the tolerance.
        i = min(max(bisect.bisect_left(stamps, stamp_ns), 1), len(stamps) - 1)
        t0, t1 = stamps[i - 1], stamps[i]
        a, b = transforms[i - 1], transforms[i]
        return interpolate(t0, a, t1, b, stamp_ns, max_extrapolation_ns=tolerance_ns)


class _Edge:
    """The link from a child frame to its parent: static, or a history."""

    def __init__(self, parent: str, static: Transform | None, history: TransformHistory | None) -> None:
        self.parent = parent
        self.static = static
        self.history = history


class TfBuffer:
    """Static and dynamic transforms between named frames.

    Each frame has at most one parent (a tree, as in tf2); a frame that gets a
    new parent is re-attached. ``max_extrapolation_ns`` lets a lookup reach
    slightly past the buffered range of a moving edge (e.g. an image stamped a
    few ms after the last /tf); beyond it lookups raise ExtrapolationError.
    """

    def __init__(self, cache_ns: int = DEFAULT_CACHE_NS, max_extrapolation_ns: int = 0) -> None:
        if cache_ns <= 0 or max_extrapolation_ns < 0:
            raise ValueError("cache_ns must be > 0 and max_extrapolation_ns >= 0")
        self.cache_ns = int(cache_ns)
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent

    # ------------------------------------------------------------------ input

    def set_transform(
        self, parent: str, child: str, stamp_ns: int, transform: Transform, static: bool = False
    ) -> None:
        """Store ``T_parent_child`` at ``stamp_ns``. Raises ValueError on malformed input."""
        parent, child = _frame(parent), _frame(child)
        if parent == child:
            raise ValueError(f"transform from {child!r} to itself")
        _check_transform(transform)
        if self._is_ancestor(child, of=parent):
            raise ValueError(f"{parent!r} -> {child!r} would close a loop: {child!r} is above {parent!r}")
        edge = self._edges.get(child)
        if static:
            self._edges[child] = _Edge(parent, transform, None)
            return
        if edge is None or edge.history is None or edge.parent != parent:
            edge = _Edge(parent, None, TransformHistory(self.cache_ns))
            self._edges[child] = edge
        assert edge.history is not None
        edge.history.insert(stamp_ns, transform)

    def clear(self, static: bool = False) -> None:
        """Forget moving transforms (on a backward time jump); static ones stay unless asked, as in tf2."""
        if static:
            self._edges.clear()
            return
        self._edges = {c: e for c, e in self._edges.items() if e.static is not None}

    # ---------------------------------------------------------------- queries

    def frames(self) -> list[str]:
        names = set(self._edges) | {e.parent for e in self._edges.values()}
        return sorted(names)

    def has_frame(self, frame: str) -> bool:
        frame = frame.lstrip("/")
        return frame in self._edges or any(e.parent == frame for e in self._edges.values())

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> Transform:
        """``T_target_source`` at ``stamp_ns`` (None: the latest time all moving edges on the path share)."""
        target, source = str(target).lstrip("/"), str(source).lstrip("/")
        source_chain, target_chain = self._chains(target, source)
        if stamp_ns is None:
            stamp_ns = self._latest_common(source_chain + target_chain)
        what = f"lookup {target!r} <- {source!r}"
        common_from_source = self._compose_up(source_chain, stamp_ns, what)
        common_from_target = self._compose_up(target_chain, stamp_ns, what)
        return common_from_target.inverse() @ common_from_source

    def time_range(self, target: str, source: str) -> tuple[int, int] | None:
        """(oldest, newest) stamp a lookup between the frames reaches without extrapolating: the
        span every moving edge on the path covers; None when no edge on the path moves."""
        target, source = str(target).lstrip("/"), str(source).lstrip("/")
        source_chain, target_chain = self._chains(target, source)
        histories = [self._edges[c].history for c in source_chain + target_chain]
        spans = [s for h in histories if h is not None and (s := h.span()) is not None]
        if not spans:
            return None
        return max(s[0] for s in spans), min(s[1] for s in spans)

    def can_transform(self, target: str, source: str, stamp_ns: int | None = None) -> bool:
        try:
            self.lookup(target, source, stamp_ns)
        except TfError:
            return False
        return True

    # -------------------------------------------------------------- internals

    def _chains(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """The frames below the common ancestor, going up from ``source`` and from ``target``."""
        for frame in (target, source):
            if not self.has_frame(frame):
                known = ", ".join(self.frames()[:20]) or "none"
                raise UnknownFrameError(f"frame {frame!r} does not exist (known frames: {known})")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        common = self._common_ancestor(up_source, up_target, target, source)
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def _is_ancestor(self, frame: str, of: str) -> bool:
        return any(f == frame for f in self._walk_up(of))

    def _walk_up(self, frame: str) -> Iterator[str]:
        """``frame`` then its parents up to the root."""
        for _ in range(MAX_DEPTH):
            yield frame
            edge = self._edges.get(frame)
            if edge is None:
                return
            frame = edge.parent
        raise ConnectivityError(f"frame tree deeper than {MAX_DEPTH} above {frame!r}: a loop?")

    def _path_to_root(self, frame: str) -> list[str]:
        return list(self._walk_up(frame))

    @staticmethod
    def _common_ancestor(up_source: list[str], up_target: list[str], target: str, source: str) -> str:
        in_target = set(up_target)
        for frame in up_source:
            if frame in in_target:
                return frame
        raise ConnectivityError(
            f"{target!r} and {source!r} are not connected: {target!r} hangs below {up_target[-1]!r}, "
            f"{source!r} below {up_source[-1]!r}"
        )

    def _compose_up(self, chain: list[str], stamp_ns: int, what: str) -> Transform:
        """``T_top_bottom`` for a chain [bottom, ..., just below top] of frames going up."""
        result = Transform.identity()
        for child in chain:
            edge = self._edges[child]
            step = edge.static
            if step is None:
                assert edge.history is not None
                where = f"{what}: {edge.parent!r} -> {child!r}"
                step = edge.history.at(stamp_ns, self.max_extrapolation_ns, where)
            result = step @ result
        return result

    def _latest_common(self, chain: list[str]) -> int:
        newest = [h.newest_ns for c in chain if (h := self._edges[c].history) is not None]
        stamps = [n for n in newest if n is not None]
        return min(stamps) if stamps else 0


def _frame(name: str) -> str:
    # tf2 drops a leading slash (ROS 1 habit); empty names are errors.
    name = str(name).lstrip("/")
    if not name:
        raise ValueError("empty frame id")
    return name


class EgoPoseSource(Protocol):
    """Where the node gets ``T_world_base`` (the ego pose) at an image stamp."""

    def ego_pose(self, stamp_ns: int) -> Transform: ...

    def time_range(self) -> tuple[int, int] | None:
        """(oldest, newest) stamp of the poses held; None when none move (nothing to extrapolate)."""
        ...

    def clear(self) -> None: ...


class TfEgoSource:
    """Ego pose from the transform buffer: ``lookup(world_frame, base_frame, stamp)``."""

    def __init__(self, buffer: TfBuffer, world_frame: str = "map", base_frame: str = "base_link") -> None:
        self.buffer = buffer
        self.world_frame = world_frame
        self.base_frame = base_frame

    def ego_pose(self, stamp_ns: int) -> Transform:
        return self.buffer.lookup(self.world_frame, self.base_frame, stamp_ns)

    def time_range(self) -> tuple[int, int] | None:
        return self.buffer.time_range(self.world_frame, self.base_frame)

    def clear(self) -> None:
        self.buffer.clear()


class OdometryEgoSource:
    """Ego pose from an odometry topic (pose of ``base_frame`` in ``world_frame``), interpolated."""

    def __init__(
        self,
        world_frame: str = "odom",
        base_frame: str = "base_link",
        cache_ns: int = DEFAULT_CACHE_NS,
        max_extrapolation_ns: int = 0,
    ) -> None:
        self.world_frame = world_frame
        self.base_frame = base_frame
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self._history = TransformHistory(cache_ns)

    def add(
        self, stamp_ns: int, pose: Transform, frame_id: str | None = None, child_frame_id: str | None = None
    ) -> None:
        """Store one odometry pose; frame ids, when given, must match the configured ones."""
        for role, got, want in (
            ("frame_id", frame_id, self.world_frame),
            ("child_frame_id", child_frame_id, self.base_frame),
        ):
            if got is not None and got.lstrip("/") != want.lstrip("/"):
                raise ValueError(f"odometry {role} is {got!r}, expected {want!r}")
        _check_transform(pose)
        self._history.insert(stamp_ns, pose)

    def ego_pose(self, stamp_ns: int) -> Transform:
        what = f"odometry {self.world_frame!r} -> {self.base_frame!r}"
        if not len(self._history):
            raise UnknownFrameError(f"{what}: no odometry received yet")
        return self._history.at(stamp_ns, self.max_extrapolation_ns, what)

    def time_range(self) -> tuple[int, int] | None:
        return self._history.span()

    def clear(self) -> None:
        self._history.clear()
